"""Moved to ``memento_lab.memory.learned.training``; this old path still works, with a DeprecationWarning, until the next release."""

from memento_lab.exports import moved

__getattr__ = moved(__name__, "memento_lab.memory.learned.training")
