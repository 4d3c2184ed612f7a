"""What is asked and how it is judged: suites of tasks, their judges, and the registry of suite kinds.

    from memento_lab.tasks import load_suite, suite, suite_kinds
    load_suite("reasoning-gym:spell_backward", n=5).tasks()

Importing this package loads no suite: the registry imports a kind's module when it is asked for.
"""

from memento_lab.tasks.registry import (
    SuiteKind,
    SuiteSpec,
    load_suite,
    spec_forms,
    suite,
    suite_kind,
    suite_kinds,
)

__all__ = ["SuiteKind", "SuiteSpec", "load_suite", "spec_forms", "suite", "suite_kind", "suite_kinds"]
