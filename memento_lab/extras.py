"""Optional parts of the package (pyproject extras) and the error that names the one to install.

    xlc = require("xllamacpp", extra="model", what="the embedded model")
    # ImportError: the embedded model needs xllamacpp: pip install 'memento-lab[model]'

The core (agent, memory, runner, reports, views, the built-in tools but media) installs with
``pip install memento-lab``; these are imported only where used.
"""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRAS = {
    "model": "the embedded llama.cpp model and its default weights",
    "media": "the media tool (OCR, transcription, video)",
    "ray": "sweeps on Ray",
    "lab": "JupyterLab",
    "datasets": "Hugging Face datasets as task tables",
    "tracking": "MLflow export and the MLflow / TensorBoard training loggers",
    "wandb": "the W&B training logger",
}


class MissingExtra(ImportError):
    """An optional package is not installed; the message says which extra installs it."""


def require(module: str, *, extra: str, what: str) -> ModuleType:
    """``import module``, or a ``MissingExtra`` saying ``pip install 'memento-lab[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if e.name is not None and e.name != module and not module.startswith(e.name + "."):
            raise  # the package is there but something it imports is broken: show that
        raise MissingExtra(f"{what} needs {module}: pip install 'memento-lab[{extra}]'") from e
