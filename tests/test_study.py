"""Studies (#30): a grid of tiny digits repairs run into an SQLite store survives a killed driver,
never runs a row twice, records failures, keys rows by every setting, and reports from the store
alone, deterministically, with numbers that match its rows."""

from __future__ import annotations

import csv
import json
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archrepair.study import Store, load_study, run_study, status, write_report
from archrepair.study.store import read_export
from archrepair.study.spec import method_version

TINY = """
name = "tiny"
seeds = {seeds}
budget = {{ epochs = 1 }}
count = 10
train_examples = 200
threads = 1
keep_level = {keep_level}

[models.digits]
checkpoint = "{checkpoint}"

[scenarios.test]

[methods.broken]
method = "block-gradient"
settings = {{ block = "no_such_block" }}

[[grid]]
models = ["digits"]
scenarios = ["test"]
methods = {methods}
"""


def _study(tmp_path: Path, checkpoint: Path, methods=("block-gradient", "train-more-block"), seeds=(0, 1),
           name: str = "tiny.toml", keep_level: float = 0.05) -> Path:
    path = tmp_path / name
    path.write_text(TINY.format(checkpoint=checkpoint, methods=list(methods), seeds=list(seeds),
                                keep_level=keep_level).replace("'", '"'))
    return path


def test_a_killed_study_reruns_what_it_lost_and_runs_every_row_once(digits_checkpoint, tmp_path):
    path = _study(tmp_path, digits_checkpoint, seeds=(0, 1, 2))
    store_path = tmp_path / "tiny.sqlite"
    driver = subprocess.Popen([sys.executable, "-m", "archrepair", "study", "run", str(path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_while_running = False
    try:
        for _ in range(6000):  # a hang guard, not a timing assertion: the runs take seconds
            if driver.poll() is not None:
                break
            if store_path.exists():
                try:
                    found = dict(sqlite3.connect(store_path, timeout=1).execute(
                        "SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
                except sqlite3.OperationalError:  # the driver is creating the store
                    found = {}
                if found.get("done", 0) >= 1 and found.get("running", 0) >= 1:
                    os.kill(driver.pid, signal.SIGKILL)
                    driver.wait()
                    killed_while_running = True
                    break
            time.sleep(0.05)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert killed_while_running
    result = run_study(load_study(path), log=lambda line: None)
    assert result["interrupted"] == 1 and result["counts"]["done"] == 6 and result["runs"] == 6
    store = Store(store_path)
    rows = store.runs()
    assert len(rows) == len({row.hash for row in rows}) == 6
    assert all(row.status == "done" and row.completions == 1 for row in rows)  # none lost, none twice
    rerun = [row for row in rows if row.attempts == 2]
    assert len(rerun) == 1 and rerun[0].note == "interrupted on attempt 1, rerun"
    assert all(row.code_version and row.environment["torch_threads"] == 1 for row in rows)
    store.close()
    again = run_study(load_study(path), log=lambda line: None)  # finished rows are not run again
    assert again["added"] == 0 and again["counts"]["done"] == 6 and Store(store_path).runs() == rows


def test_two_local_workers_never_run_the_same_row_and_a_failed_run_does_not_stop_the_others(digits_checkpoint,
                                                                                              tmp_path):
    path = _study(tmp_path, digits_checkpoint, methods=("block-gradient", "broken"), seeds=(0, 1))
    lines = []
    result = run_study(load_study(path), workers=2, log=lines.append, poll=0.1)
    assert result["counts"] == {"pending": 0, "running": 0, "done": 2, "failed": 2, "imported": 0}
    rows = Store(tmp_path / "tiny.sqlite").runs()
    assert all(row.attempts == 1 for row in rows)  # each row claimed once
    assert all(row.completions == (row.status == "done") for row in rows)
    failed = [row for row in rows if row.status == "failed"]
    assert {row.method for row in failed} == {"broken"} and all("no_such_block" in row.error for row in failed)
    assert sum("failed: " in line for line in lines) == 2 and sum("hold-out" in line for line in lines) == 2
    assert all(row.config["workers"] == 2 for row in rows)
    # the failed rows stay failed on a rerun, and run again (and fail again) with --retry-failed
    assert run_study(load_study(path), workers=2, log=lambda line: None)["counts"]["failed"] == 2
    retried = run_study(load_study(path), workers=2, retry_failed=True, log=lambda line: None, poll=0.1)
    assert retried["retried"] == 2
    assert all(row.attempts == 2 for row in Store(tmp_path / "tiny.sqlite").runs() if row.status == "failed")
    assert status(tmp_path / "tiny.sqlite")["failed"][0]["error"].startswith("ArchRepairError")


def test_a_study_whose_every_run_fails_ends_in_one_line_and_exit_1(cli, digits_checkpoint, tmp_path):
    path = _study(tmp_path, digits_checkpoint, methods=("broken",), seeds=(0, 1))
    status_code, _, stderr = cli("study", "run", path)
    last = stderr.strip().splitlines()[-1]
    assert status_code == 1 and "every run of study 'tiny' failed (2 runs, 1 distinct error)" in last, stderr
    assert "no_such_block" in last and "--retry-failed" in last and "Traceback" not in stderr


def test_every_setting_the_hash_covers_makes_another_row(digits_checkpoint, tmp_path, monkeypatch):
    base = {run.hash for run in load_study(_study(tmp_path, digits_checkpoint)).runs()}
    assert len(base) == 4
    assert {run.hash for run in load_study(_study(tmp_path, digits_checkpoint)).runs()} == base  # stable
    assert not base & {run.hash for run in load_study(_study(tmp_path, digits_checkpoint)).runs(workers=2)}
    changed = _study(tmp_path, digits_checkpoint, name="other.toml")
    changed.write_text(changed.read_text().replace("epochs = 1", "epochs = 2"))
    assert not base & {run.hash for run in load_study(changed).runs()}
    changed.write_text(changed.read_text().replace("epochs = 2", "epochs = 1").replace("threads = 1", "threads = 2"))
    assert not base & {run.hash for run in load_study(changed).runs()}
    from archrepair._repair import registry

    entry = registry.method_entry("train-more-block")
    monkeypatch.setitem(registry._METHODS._entries, "train-more-block",
                        type(entry)(entry.name, entry.summary, entry.build, entry.searches, entry.version + 1))
    assert method_version("train-more-block") == entry.version + 1
    bumped = {run.hash for run in load_study(_study(tmp_path, digits_checkpoint)).runs()}
    assert len(bumped & base) == 2  # block-gradient's rows stay, train-more-block's are new


def test_an_auto_row_names_the_option_it_returned_and_lists_every_keep_test(digits_checkpoint, tmp_path):
    path = _study(tmp_path, digits_checkpoint, methods=("auto",), seeds=(0,))
    path.write_text(path.read_text().replace("epochs = 1", "epochs = 4"))  # four candidates get an epoch each
    run_study(load_study(path), log=lambda line: None)
    (row,) = Store(tmp_path / "tiny.sqlite").runs()
    choice, keep = row.figures["choice"], row.figures["keep"]
    trained = [c["name"] for c in choice["candidates"] if c["status"] == "ran"]
    assert len(trained) >= 4 and all("seconds" in c and "val_accuracy" in c for c in choice["candidates"]
                                     if c["status"] == "ran" and c["name"] != "soup")
    offered = [o["option"] for o in choice["offered"]]
    assert [t["option"] for t in keep["tests"]] == offered and 2 <= len(offered) <= 4
    assert all({"p_value", "threshold", "passed", "chosen"} <= set(t) for t in keep["tests"])
    returned = [t["option"] for t in keep["tests"] if t["chosen"]]
    assert returned == ([keep["chosen"]] if keep["chosen"] else [])
    label = choice["chosen"] if choice["chosen_mix"] == 1.0 else f"{choice['chosen']} α {choice['chosen_mix']:g}"
    assert label == (keep["chosen"] or offered[0])  # the returned option, else the best validated
    assert row.figures["kept"] == keep["decision"]


def test_the_report_is_regenerated_identically_and_its_numbers_are_the_rows(digits_checkpoint, tmp_path):
    path = _study(tmp_path, digits_checkpoint, methods=("auto", "block-gradient"), seeds=(0, 1, 2), keep_level=1.0)
    run_study(load_study(path), log=lambda line: None)  # keep level 1: every candidate is returned
    store_path = tmp_path / "tiny.sqlite"
    first = write_report(store_path, tmp_path / "a")
    write_report(store_path, tmp_path / "b")
    for name in first["files"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    rows = Store(store_path).runs()
    changes = {(row.method, row.seed): row.figures["holdout_change_points"] for row in rows}
    assert any(change != 0 for change in changes.values())
    text = (tmp_path / "a" / "report.md").read_text()
    for method in ("auto", "block-gradient"):
        values = np.array([changes[method, seed] for seed in range(3)])
        expected = f"| `{method}` | 3 | {values.mean():+.2f} ± {values.std(ddof=1):.2f} |"
        assert expected in text, expected
    differences = [changes["auto", seed] - changes["block-gradient", seed] for seed in range(3)]
    from scipy.stats import wilcoxon

    p = wilcoxon([changes["auto", s] for s in range(3)], [changes["block-gradient", s] for s in range(3)]).pvalue \
        if any(differences) else 1.0
    assert (f"| `block-gradient` | 3 | {np.mean(differences):+.2f} | {sum(d > 0 for d in differences)}/3 | {p:.2g} |"
            in text)
    table = list(csv.DictReader(io.StringIO((tmp_path / "a" / "runs.csv").read_text())))
    assert [(line["method"], int(line["seed"])) for line in table] == [(row.method, row.seed) for row in rows]
    assert [float(line["holdout_change_points"]) for line in table] == pytest.approx(
        [row.figures["holdout_change_points"] for row in rows], abs=1e-4)


GOOD = "[models.m]\ncheckpoint = 'CKPT'\n[scenarios.t]\n[[grid]]\nmodels = ['m']\nscenarios = ['t']\nmethods = ['auto']\n"


@pytest.mark.parametrize("text, message", [
    ("name = 'x'\nbogus = 1\n[[grid]]\nmodels = ['m']\n", "key 'bogus' = 1: it takes one of the known keys"),
    ("name = 'x'\n", "has no grid: add a [[grid]] table"),
    (GOOD.replace("'auto'", "'no-such-method'"), "grid 1: methods = 'no-such-method': it takes a registered method"),
    (GOOD.replace("models = ['m']", "models = ['other']"), "grid 1: models = 'other': it takes a name defined in [models]"),
    (GOOD.replace("[scenarios.t]", "[scenarios.t]\nfield = 'missing.npz'"), "missing.npz' does not exist"),
    ("[methods.v]\nmethod = 'magic'\n" + GOOD.replace("'auto'", "'v'"),
     "methods.v.method = 'magic': it takes a registered method's name"),
    ("[methods.v]\nmethod = 'auto'\ntask = { no_such = 1 }\n" + GOOD.replace("'auto'", "'v'"),
     "unknown setting 'no_such'"),
    ("[[grid\n", "is not valid TOML"),
    ("budget = { minutes = 2 }\n" + GOOD, "budget: key 'minutes' = 2: it takes one of the known keys (epochs, seconds)"),
    ("count = 'lots'\n" + GOOD, "count = 'lots': it takes a whole number >= 1"),
    ("seeds = []\n" + GOOD, "seeds = []: it takes a non-empty list"),
    ("seeds = [0, -1]\n" + GOOD, "seeds[1] = -1: it takes a whole number >= 0"),
    ("keep_level = 2\n" + GOOD, "keep_level = 2: it takes a number in (0, 1]"),
    ("threads = true\n" + GOOD, "threads = True: it takes a whole number >= 1"),
    (GOOD.replace("[scenarios.t]", "[scenarios.t]\ncorruption = 'fog'\nseverity = 9"),
     "scenarios.t.severity = 9: it takes a whole number from 1 to 5"),
    (GOOD.replace("[scenarios.t]", "[scenarios.t]\ncorruption = 'smoke'"), "scenarios.t.corruption = 'smoke'"),
    (GOOD.replace("methods = ['auto']", "methods = []"), "grid[0].methods = []: it takes a non-empty list"),
    ("[methods.v]\nmethod = 'auto'\ntask = { fail_weight = 'heavy' }\n" + GOOD.replace("'auto'", "'v'"),
     "v.task: {'fail_weight': 'heavy'} cannot be applied"),
])
def test_a_bad_study_file_is_refused_in_one_line(cli, digits_checkpoint, tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text.replace("CKPT", str(digits_checkpoint)))
    status_code, _, stderr = cli("study", "run", path)
    assert status_code == 1 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not (tmp_path / "bad.sqlite").exists()


TOML_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-3, 2000) | st.floats(-2, 200, allow_nan=False)
                           | st.text("abcdefghijklmnopqrstuvwxyz_.-", max_size=12),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                               st.sampled_from(["models", "scenarios", "methods", "seeds", "budget", "count",
                                                "checkpoint", "corruption", "severity", "field", "seconds", "epochs",
                                                "method", "task", "settings", "rows", "x"]), inner, max_size=4),
                           max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["name", "seeds", "budget", "count", "train_examples", "threads", "device",
                                        "protocol", "holdout", "keep_level", "models", "scenarios", "methods", "grid",
                                        "imports", "export", "bogus"]), TOML_VALUES, max_size=8))
def test_any_parsed_study_file_resolves_or_is_refused_in_one_line(raw):
    """Whatever a TOML file holds, checking and resolving it ends in its runs or an ArchRepairError,
    never another exception (no checkpoint exists here, so a valid file is refused at its checkpoint)."""
    from archrepair.errors import ArchRepairError
    from archrepair.study.spec import Study, validate_study

    raw = {key: value for key, value in raw.items() if value is not None}
    try:
        validate_study(raw, "'made.toml'")
        Study(Path("/nonexistent/made.toml"), raw).runs()
    except ArchRepairError as error:
        assert "\n" not in str(error)


def test_study_options_are_refused_where_they_mean_nothing(cli, tmp_path):
    status_code, _, stderr = cli("study", "status", tmp_path / "x.sqlite", "--workers", "2")
    assert status_code == 1 and "--workers means something only to `study run`" in stderr
    status_code, _, stderr = cli("study", "status", tmp_path / "missing.sqlite")
    assert status_code == 1 and "does not exist" in stderr
    status_code, _, stderr = cli("study", "report", tmp_path / "missing.sqlite")
    assert status_code == 1 and "needs --out" in stderr
    status_code, _, stderr = cli("study", "export", tmp_path / "missing.sqlite")
    assert status_code == 1 and "study export needs --out" in stderr
    status_code, _, stderr = cli("study", "export", tmp_path / "missing.sqlite", "--out", tmp_path / "e.jsonl")
    assert status_code == 1 and "does not exist" in stderr and not (tmp_path / "e.jsonl").exists()
    status_code, _, stderr = cli("study", "status", tmp_path / "x.sqlite", "--out", tmp_path / "e.jsonl")
    assert status_code == 1 and "--out means something only to `study report / export`" in stderr


def test_study_report_and_export_never_replace_what_a_user_has(cli, tmp_path):
    """An existing report folder or export file (or ``/``) is refused without --overwrite, in one line,
    every file there byte-identical after; with --overwrite the report's own files replace their
    namesakes and the user's other files stay."""
    store = Store(tmp_path / "s.sqlite")
    store.set_meta("study", {"name": "s"})
    store.close()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my own notes")
    (mine / "keep.txt").write_text("unrelated")
    (tmp_path / "e.jsonl").write_text("my rows\n")
    before = {path: path.read_bytes() for path in [mine / "report.md", mine / "keep.txt", tmp_path / "e.jsonl"]}
    for arguments in (("report", "--out", mine), ("export", "--out", tmp_path / "e.jsonl"), ("report", "--out", "/")):
        status_code, _, stderr = cli("study", arguments[0], tmp_path / "s.sqlite", *arguments[1:])
        assert status_code == 1 and len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr, stderr
        assert "--overwrite" in stderr or "contains the input" in stderr  # "/" holds the store
    assert {path: path.read_bytes() for path in before} == before
    status_code, _, stderr = cli("study", "report", tmp_path / "s.sqlite", "--out", mine, "--overwrite")
    assert status_code == 0, stderr
    assert (mine / "keep.txt").read_text() == "unrelated" and (mine / "report.md").read_text() != "my own notes"
    status_code, _, stderr = cli("study", "export", tmp_path / "s.sqlite", "--out", tmp_path / "e.jsonl", "--overwrite")
    assert status_code == 0 and (tmp_path / "e.jsonl").read_text() == "", stderr
    status_code, _, stderr = cli("study", "status", tmp_path / "s.sqlite", "--overwrite")
    assert status_code == 1 and "--overwrite means something only to `study report / export`" in stderr


def test_the_ray_engine_gives_the_rows_local_workers_give(digits_checkpoint, tmp_path):
    ray = pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")  # CI installs the extra
    local = tmp_path / "local"
    local.mkdir()
    remote = tmp_path / "remote"
    remote.mkdir()
    methods = ("block-gradient", "broken")
    run_study(load_study(_study(local, digits_checkpoint, methods=methods)), workers=2, log=lambda line: None, poll=0.1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        lines = []
        result = run_study(load_study(_study(remote, digits_checkpoint, methods=methods)), workers=2, engine="ray",
                           log=lines.append)
    finally:
        ray.shutdown()
    assert result["counts"]["done"] == 2 and result["counts"]["failed"] == 2
    assert sum(line.startswith("[") for line in lines) == 4  # one progress line per run
    here = {row.hash: row for row in Store(local / "tiny.sqlite").runs()}
    there = {row.hash: row for row in Store(remote / "tiny.sqlite").runs()}
    assert set(here) == set(there)
    for key, row in here.items():
        assert there[key].status == row.status and there[key].error == row.error
        timeless = {k: v for k, v in (row.figures or {}).items() if k != "seconds"}  # the method's wall time
        assert {k: v for k, v in (there[key].figures or {}).items() if k != "seconds"} == timeless


def test_rows_made_before_the_store_are_imported_once_and_reported_as_imported(cli, tmp_path):
    source = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "heldout_rows.jsonl"
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(source.read_text().splitlines(keepends=True)[:3]))
    store_path = tmp_path / "old.sqlite"
    status_code, stdout, stderr = cli("study", "import", store_path, "--rows", rows)
    assert status_code == 0 and "imported 3 of 3 rows" in stdout, stderr
    assert cli("study", "import", store_path, "--rows", rows)[1].startswith("imported 0 of 3")  # once only
    stored = Store(store_path).runs()
    assert [row.status for row in stored] == ["imported"] * 3 and all(row.code_version is None for row in stored)
    import json

    first = json.loads(rows.read_text().splitlines()[0])
    assert stored[0].figures["holdout_change_points"] == first["judged"]["returned"]["holdout"]["change_points"]
    write_report(store_path, tmp_path / "report")
    assert "imported 3 (made before the store" in (tmp_path / "report" / "report.md").read_text()
    status_code, _, stderr = cli("study", "import", store_path)
    assert status_code == 1 and "needs --rows" in stderr


def test_a_study_export_restores_a_new_store_without_running_anything_again(digits_checkpoint, tmp_path):
    path = _study(tmp_path, digits_checkpoint, methods=("block-gradient", "broken"), seeds=(0,))
    path.write_text('export = "tiny/runs.jsonl"\n' + path.read_text())
    run_study(load_study(path), log=lambda line: None)
    export = tmp_path / "tiny" / "runs.jsonl"
    exported = [json.loads(line) for line in export.read_text().splitlines()]
    assert sorted(row["status"] for row in exported) == ["done", "failed"]  # written as rows finish
    write_report(tmp_path / "tiny.sqlite", tmp_path / "before")
    (tmp_path / "tiny.sqlite").unlink()  # a fresh machine: the export is committed, the store is not
    lines = []
    result = run_study(load_study(path), log=lines.append)
    assert result["counts"]["done"] == 1 and result["counts"]["failed"] == 1
    assert any("restored 2 finished rows" in line for line in lines) and not any(line.startswith("[") for line in lines)
    write_report(tmp_path / "tiny.sqlite", tmp_path / "after")
    for name in ("report.md", "runs.csv", "changes.png"):
        assert (tmp_path / "before" / name).read_bytes() == (tmp_path / "after" / name).read_bytes(), name
    assert export.read_text() == "".join(json.dumps(row, sort_keys=True) + "\n" for row in exported)


def test_a_study_folder_moved_elsewhere_reports_alike_and_restores_its_rows_with_their_paths_there(
        digits_checkpoint, digits, tmp_path):
    import shutil

    here, there = tmp_path / "here", tmp_path / "there"
    shutil.copytree(digits_checkpoint, here / "model")
    rng = np.random.default_rng(0)  # a field set: noisy copies of 300 digits
    rows = rng.choice(len(digits.y_test), 300)
    np.savez(here / "field.npz", y=digits.y_test[rows],
             x=np.clip(digits.x_test[rows, ..., 0] + rng.normal(0, 60, (300, 8, 8)), 0, 255).astype(np.uint8))
    path = _study(here, "model", methods=("block-gradient",), seeds=(0,))
    path.write_text('export = "tiny/runs.jsonl"\n' + path.read_text().replace('scenarios = ["test"]',
                    'scenarios = ["test", "field"]') + '\n[scenarios.field]\nfield = "field.npz"\n')
    run_study(load_study(path), log=lambda line: None)
    rows = [json.loads(line) for line in (here / "tiny" / "runs.jsonl").read_text().splitlines()]
    assert [row["status"] for row in rows] == ["done", "done"]
    assert {row["config"]["checkpoint"] for row in rows} == {"../model"}  # relative to the export
    assert [row["config"]["field"] for row in rows] == [None, "../field.npz"]
    write_report(here / "tiny.sqlite", tmp_path / "before")
    shutil.move(here, there)
    write_report(there / "tiny.sqlite", tmp_path / "moved")  # the store itself, moved
    (there / "tiny.sqlite").unlink()  # a fresh machine: the export is committed, the store is not
    assert run_study(load_study(there / "tiny.toml"), log=lambda line: None)["counts"]["done"] == 2
    stored = Store(there / "tiny.sqlite").runs()
    assert {Path(row.config["checkpoint"]).resolve() for row in stored} == {(there / "model").resolve()}
    assert Path(stored[1].config["field"]).resolve() == (there / "field.npz").resolve()
    write_report(there / "tiny.sqlite", tmp_path / "restored")
    for name in ("report.md", "runs.csv", "changes.png", "cells.png"):
        before = (tmp_path / "before" / name).read_bytes()
        assert before == (tmp_path / "moved" / name).read_bytes() == (tmp_path / "restored" / name).read_bytes(), name


def test_a_run_keeps_its_hash_wherever_the_checkpoint_lies_and_runs_from_the_new_place(digits_checkpoint, tmp_path):
    import shutil

    moved = tmp_path / "elsewhere" / "model"
    shutil.copytree(digits_checkpoint, moved)
    here = load_study(_study(tmp_path, digits_checkpoint, name="here.toml")).runs()
    there_study = load_study(_study(tmp_path, moved, name="there.toml"))
    there = there_study.runs()
    assert [run.hash for run in here] == [run.hash for run in there]
    store = Store(tmp_path / "shared.sqlite")
    store.add(here)
    store.add(there)  # the pending rows now run from the new place
    assert {row.config["checkpoint"] for row in store.runs()} == {str(moved.resolve())}
    store.close()


def test_rows_finished_in_another_checkout_are_exported_with_this_checkouts_paths(digits_checkpoint, tmp_path):
    import shutil

    other = tmp_path / "other" / "model"  # the same weights in another checkout of the repository
    shutil.copytree(digits_checkpoint, other)
    here = load_study(_study(tmp_path, digits_checkpoint, name="here.toml")).runs()
    store = Store(tmp_path / "s.sqlite")
    store.add(load_study(_study(tmp_path, other, name="there.toml")).runs())
    finished = store.claim("owner", "worker")
    store.finish(finished.hash, "owner", "worker", {"figures": {"holdout_change_points": 1.0}, "seconds": 1.0})
    store.add(here)  # the study resolved here again: every row, the finished one too, names the files here
    assert {row.config["checkpoint"] for row in store.runs()} == {str(Path(digits_checkpoint).resolve())}
    exported = [json.loads(line) for line in store.export_lines(tmp_path / "export").splitlines()]
    assert [row["status"] for row in exported] == ["done"]
    assert Path(tmp_path / "export", exported[0]["config"]["checkpoint"]).resolve() == Path(digits_checkpoint).resolve()
    store.close()


def test_pending_rows_follow_the_study_files_current_order_and_finished_rows_keep_their_place(
        digits_checkpoint, tmp_path):
    runs = load_study(_study(tmp_path, digits_checkpoint, seeds=(0, 1, 2))).runs()
    store = Store(tmp_path / "order.sqlite")
    assert store.add(runs) == len(runs)
    first = store.claim("owner", "worker")
    store.connection.execute("UPDATE runs SET status = 'done' WHERE hash = ?", (first.hash,))
    reordered = list(reversed(runs))
    assert store.add(reordered) == 0
    pending = [row.hash for row in store.runs() if row.status == "pending"]
    assert pending == [run.hash for run in reordered if run.hash != first.hash]
    assert store.runs()[0].hash == first.hash
    assert store.claim("owner", "worker").hash == reordered[0].hash
    store.close()


@pytest.fixture(scope="module")
def rgb_digits_checkpoint(digits, tmp_path_factory):
    """The digits with their gray channel repeated (the corruptions take RGB) as an npz, and a small
    CNN trained on them for 3 epochs."""
    import torch

    from archrepair.base_model import TrainJob, train_base_model
    from archrepair.data import load_data
    from archrepair.train import TrainConfig

    folder = tmp_path_factory.mktemp("rgb-digits")
    np.savez(folder / "rgb.npz", x_train=np.repeat(digits.x_train, 3, axis=-1), y_train=digits.y_train,
             x_test=np.repeat(digits.x_test, 3, axis=-1), y_test=digits.y_test)
    data = load_data(f"npz:{folder / 'rgb.npz'}")
    train_base_model(data, TrainJob("small_cnn", 0.5, seed=0), TrainConfig(epochs=3, lr=0.05), folder / "model",
                     torch.device("cpu"))
    return folder / "model", data


def test_a_corruption_run_records_its_15_corruption_table_and_a_named_block_the_localisers_scores(
        rgb_digits_checkpoint, tmp_path):
    from archrepair._api import load_problem
    from archrepair.base_model import make_loader
    from archrepair.data.corrupted import corrupted_test
    from archrepair.data.corruptions import NAMES
    from archrepair.evaluate import predict_logits
    from archrepair.models.blocks import default_blocks

    checkpoint, digits = rgb_digits_checkpoint
    path = _study(tmp_path, checkpoint, methods=("named",), seeds=(0,))
    path.write_text(path.read_text().replace('[scenarios.test]', '[scenarios.test]\n[scenarios.noise]\n'
                                             'corruption = "gaussian_noise"\nseverity = 3\n')
                    .replace('scenarios = ["test"]', 'scenarios = ["noise"]')
                    .replace("[[grid]]", '[methods.named]\nmethod = "block-gradient"\nsettings = { block = "block2" }'
                                         "\n\n[[grid]]"))
    problem = load_problem(checkpoint)
    assert "block2" in default_blocks(problem.model)
    run_study(load_study(path), log=lambda line: None)
    (row,) = Store(tmp_path / "tiny.sqlite").runs()
    assert row.status == "done", row.error
    table = row.figures["shift_table"]
    assert set(table) == {"clean", *NAMES} and all(set(cell) == {"original", "returned", "candidate"}
                                                   for cell in table.values())
    split = load_problem(checkpoint, corruption={"name": "gaussian_noise", "severity": 3, "seed": 0}).failures(
        None, 10, 0, "heldout", 0.5)
    held = np.asarray(split.holdout_indices)
    for name, images in (("clean", digits), ("gaussian_noise", corrupted_test(digits, "gaussian_noise", 3))):
        predictions = predict_logits(problem.model, make_loader(images, "test", problem.record, indices=held)).argmax(1)
        expected = round(100 * float((predictions.numpy() == digits.y_test[held]).mean()), 2)
        assert table[name]["original"] == expected, name
    localization = row.figures["localization"]
    assert set(localization["blocks"]) == set(default_blocks(problem.model))
    assert localization["chosen"] in localization["blocks"] and row.figures["block"] == "block2"


def test_the_committed_studies_resolve_and_zero_training_examples_means_all():
    root = Path(__file__).resolve().parent.parent / "studies"
    counts = {name: len(load_study(root / f"{name}.toml").runs()) for name in ("cpu", "search", "full")}
    assert counts == {"cpu": 96, "search": 36, "full": 1488}
    whole = [run for run in load_study(root / "search.toml").runs() if run.method == "archrepair@logit2-whole-train"]
    assert len(whole) == 3 and all(run.config["task"]["train_examples"] is None for run in whole)
    assert all(run.config["task"]["train_examples"] == 5000 for run in load_study(root / "cpu.toml").runs())


@pytest.mark.parametrize("name", ["cpu", "auto"])
def test_a_committed_rows_hash_is_the_hash_its_run_has_now(name):
    """Rows keep their hashes (the devices, paths and defaults that changed around them are not in
    them): every row of a committed export that the study file still names, made by the method's
    current version, has the hash its run resolves to today, so a fresh store restored from the
    export runs none of them again."""
    study = load_study(Path(__file__).resolve().parent.parent / "studies" / f"{name}.toml")
    runs = {(run.model, run.scenario, run.method, run.seed): run for run in study.runs()}
    compared = 0
    for row in read_export(study.export):
        run = runs.get((row["model"], row["scenario"], row["method"], row["seed"]))
        if row["status"] == "imported" or run is None or \
                run.config["method_version"] != row["config"].get("method_version"):
            continue
        assert run.hash == row["hash"], (row["model"], row["scenario"], row["method"], row["seed"])
        compared += 1
    assert compared >= 20
