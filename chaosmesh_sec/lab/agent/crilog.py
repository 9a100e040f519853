"""Turn a container's raw output into the CRI log format kwok serves to ``kubectl logs``."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

__all__ = ["CriLogPump", "cri_line"]


def cri_line(text: str, when: dt.datetime, stream: str = "stdout") -> str:
    """One CRI log line (pure): ``<RFC3339Nano> <stream> F <text>``."""
    return f"{when.strftime('%Y-%m-%dT%H:%M:%S.%f')}000Z {stream} F {text}\n"


class CriLogPump:
    """Follow ``raw`` and append each complete line to ``cri`` in CRI format."""

    def __init__(self, name: str, raw: Path, cri: Path) -> None:
        self.name = name
        self.raw = raw
        self.cri = cri
        self._stop = threading.Event()
        self.cri.touch()

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"log-{self.name}", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        pending = b""
        with self.raw.open("rb") as src:
            while not self._stop.is_set():
                chunk = src.read(65536)
                if not chunk:
                    self._stop.wait(0.2)
                    continue
                pending += chunk
                *lines, pending = pending.split(b"\n")
                if lines:
                    now = dt.datetime.now(dt.UTC)
                    with self.cri.open("a") as out:
                        for line in lines:
                            out.write(cri_line(line.decode(errors="replace"), now))
