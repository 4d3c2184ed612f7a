"""What is asked and how it is judged: tasks, suites, judges, and the registry of suite kinds.

- ``base``: ``Task``, ``Suite`` (its tasks, its judges' verdicts, the run options it ``forces``, the
  tool servers an episode needs), ``JudgeContext``, ``Judgement``
- ``registry``: suite kinds by name (``@suite``, entry points ``memento_lab.suites``), ``load_suite``
- ``suites`` (reasoning-gym, HumanEval, baselines), ``qa`` (question/answer, DeepResearcher), ``controls``, ``bfcl``
- ``table_suite`` + ``tables``: your own tasks from CSV, JSONL, Parquet, datasets (``judge_functions``: your judge)
- ``judges``: string judges, Memento's LLM judge, the sandboxed unit-test judge (``unit_harness``), agreement
- ``answers``: the kinds of answer, and what a program answer is and how it is checked
- ``prompts/``: the judge's rubric and the suites' instructions, as files

    from memento_lab.tasks import load_suite
    load_suite("reasoning-gym:spell_backward", n=5).tasks()

Importing this package loads no suite: the registry imports a kind's module when it is asked for.
"""

from memento_lab.exports import lazy

_REGISTRY = "memento_lab.tasks.registry"
_EXPORTS = {
    "load_suite": _REGISTRY,
    "suite": _REGISTRY,
    "suite_kind": _REGISTRY,
    "suite_kinds": _REGISTRY,
    "spec_forms": _REGISTRY,
    "SuiteKind": _REGISTRY,
    "SuiteSpec": _REGISTRY,
    "Task": "memento_lab.tasks.base",
    "Suite": "memento_lab.tasks.base",
    "JudgeContext": "memento_lab.tasks.base",
    "Judgement": "memento_lab.tasks.base",
    "EpisodeServers": "memento_lab.tasks.base",
    "trivial_baseline": "memento_lab.tasks.suites",
    "QASuite": "memento_lab.tasks.qa",
    "TableSuite": "memento_lab.tasks.table_suite",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy(__name__, _EXPORTS)
