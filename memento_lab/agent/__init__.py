"""One episode: the agent loop, models, tools, suites and judges.

Importing the package registers the built-in control suites (``control:positive``,
``control:negative``) with ``suites.load_suite``.
"""

from memento_lab.agent import controls as _controls  # noqa: F401  (registers the control suites)
