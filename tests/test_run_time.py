"""The wall time of a run across an interruption and a resume (an injected clock, no sleeping)."""

import json

import pytest

from archrepair.errors import ArchRepairError
from archrepair._repair.run_time import RUN_TIME_FILE, RunTime


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_killed_run_counts_to_its_last_heartbeat_and_the_resumed_run_adds_its_own(tmp_path):
    clock = Clock()
    killed = RunTime(tmp_path, clock, beat_seconds=0)
    killed.start()
    clock.now += 600
    killed.beat()  # its last sign of life; then it dies without stop()
    clock.now += 3600  # the machine is off for an hour: not counted
    with RunTime(tmp_path, clock, beat_seconds=0) as resumed:
        clock.now += 300
        figures = resumed.stop()
    assert figures == {"total_seconds": 900.0, "this_run_seconds": 300.0, "before_resume_seconds": 600.0, "runs": 2}
    assert resumed.stop() == figures  # ended once
    assert len(json.loads((tmp_path / RUN_TIME_FILE).read_text())["sessions"]) == 2


def test_a_run_without_a_folder_times_itself_and_writes_nothing(tmp_path):
    clock = Clock()
    with RunTime(None, clock, beat_seconds=0) as timer:
        clock.now += 12.5
    assert timer.stop() == {"total_seconds": 12.5, "this_run_seconds": 12.5, "before_resume_seconds": 0.0, "runs": 1}
    assert not list(tmp_path.iterdir())


def test_the_heartbeat_thread_stops_with_the_run(tmp_path):
    timer = RunTime(tmp_path / "work", beat_seconds=0.01)
    with timer:
        pass
    assert timer._thread is not None and not timer._thread.is_alive()


def test_a_damaged_record_is_refused_in_one_line_and_left_as_it_is(tmp_path):
    (tmp_path / RUN_TIME_FILE).write_text("{not json")
    with pytest.raises(ArchRepairError, match="rerun without --resume"):
        RunTime(tmp_path, beat_seconds=0).start()
    assert (tmp_path / RUN_TIME_FILE).read_text() == "{not json"
