"""Where the notebooks are, and copies of them to work in.

A checkout reads ``notebooks/`` (the jupytext ``py:percent`` sources); an installed package carries
the same files as ``memento_lab/notebooks/`` (``setup.py`` puts them in the wheel). ``working_dir``
is where the notebooks run from: the checkout's root, else the current folder (never the
installed package's folder).

    copy_notebooks("my-notebooks")   # NAME.py and an output-free NAME.ipynb per notebook
"""

from __future__ import annotations

import shutil
from pathlib import Path

from memento_lab.config import PROJECT_ROOT

PACKAGED = Path(__file__).resolve().parent / "notebooks"
CHECKOUT = PROJECT_ROOT / "notebooks"


def in_checkout() -> bool:
    """This package runs from a source checkout (``notebooks/`` and ``pyproject.toml`` beside it)."""
    return CHECKOUT.is_dir() and (PROJECT_ROOT / "pyproject.toml").is_file()


def notebook_dir() -> Path:
    """The folder of the notebooks' ``.py`` sources: the checkout's, else the installed package's."""
    if in_checkout():
        return CHECKOUT
    if PACKAGED.is_dir():
        return PACKAGED
    raise FileNotFoundError(
        f"no notebooks: neither {CHECKOUT} (a checkout) nor {PACKAGED} (an installed wheel) exists"
    )


def working_dir() -> Path:
    """Where notebooks run and relative paths (``data/runs/...``) land: the checkout's root, else the current folder."""
    return PROJECT_ROOT if in_checkout() else Path.cwd()


def notebook_names() -> list[str]:
    """The notebooks by name (``01_build_case_bank``, ...), in order."""
    return sorted(p.stem for p in notebook_dir().glob("[0-9]*.py"))


def copy_notebooks(dest: str | Path, *, force: bool = False) -> list[Path]:
    """Copy every notebook into ``dest`` as its ``.py`` source and an output-free ``.ipynb``.

    An existing file is kept (a FileExistsError names them all, nothing is written) unless ``force``."""
    import jupytext

    dest = Path(dest)
    sources = [notebook_dir() / f"{name}.py" for name in notebook_names()]
    targets = [dest / s.name for s in sources] + [dest / f"{s.stem}.ipynb" for s in sources]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not force:
        raise FileExistsError(f"{len(existing)} file(s) exist (--force replaces them): {', '.join(existing)}")
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources:
        written.append(Path(shutil.copyfile(source, dest / source.name)))
        notebook = jupytext.read(source)
        notebook.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        jupytext.write(notebook, dest / f"{source.stem}.ipynb", fmt="ipynb")
        written.append(dest / f"{source.stem}.ipynb")
    return written
