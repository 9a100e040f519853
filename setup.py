"""The build step that puts the folders the pack ships into its wheel; the rest is pyproject.toml.

experiments/, gamedays/, deploy/ and probes/ (the kit) live at the top of the repository,
once. A wheel carries them as package data under chaosmesh_sec/_data/, where
chaosmesh_sec/_shipped.py finds them (in a checkout or an editable install it reads
them where they are, so an editable build copies nothing). The list of folders is
_shipped.py's, loaded here by its path: the package's dependencies are not installed
when it is built.
"""

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _shipped() -> ModuleType:
    path = ROOT / "chaosmesh_sec" / "_shipped.py"
    spec = importlib.util.spec_from_file_location("_shipped", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithShipped(build_py):
    """``build_py``, then the shipped folders copied into the built package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        shipped = _shipped()
        target = Path(self.build_lib) / "chaosmesh_sec" / shipped.DATA_DIR
        ignored = shutil.ignore_patterns("__pycache__", "*.py[cod]")
        for folder in shipped.SHIPPED:
            shutil.copytree(ROOT / folder, target / folder, dirs_exist_ok=True, ignore=ignored)


setup(cmdclass={"build_py": BuildPyWithShipped})
