"""The wall time of a run that may be interrupted and resumed (``repair --resume``).

Each run of the command is a *session*: its start and its last sign of life (a heartbeat every few
seconds, and its end) are kept in ``run_time.json`` in the work folder, so that a run killed without
warning still counts up to its last heartbeat. A resumed run's report then gives the seconds before
the resume, those of this session, and their sum (the time between the sessions is not counted).

Example:
    >>> with RunTime(work_dir) as timer:   # doctest: +SKIP
    ...     work(); figures = timer.stop()
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import ArchRepairError
from ..fileio import write_text_atomically

RUN_TIME_FILE = "run_time.json"


class RunTime:
    """Sessions of one run in ``folder`` (``None``: this session only), read with ``clock`` (seconds
    since the epoch; a test may inject one), a heartbeat every ``beat_seconds`` (0: none)."""

    def __init__(self, folder: Path | None, clock: Callable[[], float] = time.time, beat_seconds: float = 5.0) -> None:
        self.path = Path(folder) / RUN_TIME_FILE if folder is not None else None
        self.clock, self.beat_seconds = clock, beat_seconds
        self.sessions: list[dict] = []
        self.figures: dict | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RunTime:
        self.start()
        return self

    def __exit__(self, *exception) -> None:
        self.stop()

    def start(self) -> None:
        """Read the earlier sessions (if any) and begin this one."""
        if self.path is not None and self.path.exists():
            try:
                self.sessions = json.loads(self.path.read_text())["sessions"]
            except (ValueError, KeyError, TypeError):
                raise ArchRepairError(f"cannot resume: {str(self.path)!r} is not a run-time record; rerun without "
                                      "--resume to start afresh") from None
        now = self.clock()
        self.sessions.append({"started": now, "seen": now})
        self.beat()
        if self.beat_seconds > 0:
            self._thread = threading.Thread(target=self._beating, daemon=True, name="archrepair-run-time")
            self._thread.start()

    def beat(self) -> None:
        """Record that this session is alive now."""
        self.sessions[-1]["seen"] = self.clock()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomically(self.path, json.dumps({"sessions": self.sessions}))

    def stop(self) -> dict:
        """End this session (once; later calls return the same figures): ``total_seconds`` (every
        session), ``this_run_seconds``, ``before_resume_seconds`` and ``runs`` (this one included)."""
        if self.figures is None:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            self.beat()
            spans = [session["seen"] - session["started"] for session in self.sessions]
            self.figures = {"total_seconds": round(sum(spans), 2), "this_run_seconds": round(spans[-1], 2),
                            "before_resume_seconds": round(sum(spans[:-1]), 2), "runs": len(spans)}
        return self.figures

    def _beating(self) -> None:
        while not self._stop.wait(self.beat_seconds):
            try:
                self.beat()
            except OSError:  # the work folder went away under us: nothing left to record into
                return


__all__ = ["RUN_TIME_FILE", "RunTime"]
