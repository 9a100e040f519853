"""Where the folders the pack ships are: ``experiments/``, ``gamedays/``, ``deploy/``, ``probes/``.

They live at the top of the repository, beside the package, as the one copy. A wheel
carries them inside the package, under ``chaosmesh_sec/_data/`` (``setup.py``'s build
step copies them there); a checkout or an editable install (``pip install -e .``)
reads them where they are. :func:`shipped` finds a folder either way;
:func:`copy_shipped` writes them all into a folder of the user's
(``chaosmesh-sec init DIR``).

Standard library only: ``setup.py`` loads this file by its path at build time, before
the pack's dependencies are installed, to know what to copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["DATA_DIR", "SHIPPED", "copy_shipped", "shipped"]

SHIPPED = ("experiments", "gamedays", "deploy", "probes")
"""The folders a wheel carries: the experiments, the game-day plans, the scheduled job, the kit."""
DATA_DIR = "_data"
"""Where a wheel carries them, inside the package."""

_PACKAGE = Path(__file__).resolve().parent
_IGNORED = shutil.ignore_patterns("__pycache__", "*.py[cod]")


def shipped(folder: str) -> Path:
    """The shipped ``folder``: the wheel's copy, else the checkout's (the package's parent)."""
    if folder not in SHIPPED:
        raise ValueError(f"{folder!r} is not shipped; the folders are: {', '.join(SHIPPED)}")
    bundled = _PACKAGE / DATA_DIR / folder
    return bundled if bundled.is_dir() else _PACKAGE.parent / folder


def copy_shipped(dest: Path, force: bool = False) -> list[Path]:
    """Copy every shipped folder into ``dest`` (created if needed); return the folders written.

    Raises FileNotFoundError when a shipped folder is missing from this install, and
    FileExistsError naming the files that would be overwritten (nothing is written
    then) unless ``force``.
    """
    sources = {folder: shipped(folder) for folder in SHIPPED}
    missing = [str(path) for path in sources.values() if not path.is_dir()]
    if missing:
        raise FileNotFoundError(f"this install lacks the pack's {', '.join(missing)}")
    if not force:
        taken = [
            str(dest / folder / path.relative_to(source))
            for folder, source in sources.items()
            for path in sorted(source.rglob("*"))
            if path.is_file() and (dest / folder / path.relative_to(source)).exists()
        ]
        if taken:
            more = f" and {len(taken) - 5} more" if len(taken) > 5 else ""
            raise FileExistsError(f"would overwrite {', '.join(taken[:5])}{more}")
    written = []
    for folder, source in sources.items():
        shutil.copytree(source, dest / folder, dirs_exist_ok=True, ignore=_IGNORED)
        written.append(dest / folder)
    return written
