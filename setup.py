"""Build hook (the rest of the configuration is pyproject.toml): the notebooks' jupytext sources
(``notebooks/*.py``) ship in the wheel as ``memento_lab/notebooks/``, so ``memento-lab demo`` and
``memento-lab notebooks copy DIR`` work from an installed package (a checkout reads ``notebooks/``)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"


class BuildWithNotebooks(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "memento_lab" / "notebooks"
        self.mkpath(str(target))
        for source in sorted(NOTEBOOKS.glob("*.py")):
            self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": BuildWithNotebooks})
