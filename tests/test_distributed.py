"""One repair spread over processes: the collectives (2 gloo processes via torch.multiprocessing) and
whole repairs under torchrun (2 processes in a subprocess) against one process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from archrepair import distributed
from archrepair.budget import Deadline
from archrepair.data import BatchLoader
from archrepair.evaluate import predict
from archrepair.fileio import write_text_atomically
from archrepair.train import TrainConfig, fit

SEARCH = ["--method", "archrepair", "--block", "block2", "--original-logit", "2", "--beta-decay", "0",
          "--search-epochs", "3", "--warmup-epochs", "1", "--finetune-epochs", "2", "--train-examples", "400",
          "--count", "15", "--search-batch-size", "64", "--quiet", "--json"]
"""A repair whose search moves (a weak original operation, no beta decay), small enough for a test."""

ARCHITECTURE_TOLERANCE = 0.02
"""Largest difference allowed between one process's and two processes' softmax architecture weights
(two processes draw other batches of the same global size, so the steps differ a little): measured
0.008, while the search moves them by about 0.06 from their start."""

HOLDOUT_ROWS = 15
"""Largest difference allowed in correctly classified test hold-out rows between one and two processes."""

HANG_GUARD = 300
"""Seconds after which a launched run counts as hung (a guard against deadlock, not a timing)."""


# ------------------------------------------------------------------ collectives, two processes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _collectives(rank: int, size: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(size))
    torch.set_num_threads(1)
    found: dict = {}
    rows = np.arange(103)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))  # the same in both processes
    x = np.random.default_rng(0).integers(0, 255, (50, 2, 2, 3), dtype=np.uint8)
    y = np.random.default_rng(1).integers(0, 3, 50)
    loader = BatchLoader(x, y, [0.5] * 3, [0.25] * 3, batch_size=8)
    expected_logits = predict(model, loader)[0]  # before joining: one process's result
    with distributed.process_group(torch.device("cpu")) as world:
        found["world"] = [world.rank, world.size, world.backend]
        found["share"] = distributed.share_rows(rows, 20, seed=3).tolist()
        found["batch"] = distributed.batch_share(64)
        found["any"] = distributed.any_rank(rank == 1)
        found["least"] = distributed.least(10.0 + rank)
        found["sums"] = list(distributed.sums(1.0, float(rank)))
        weights = [nn.Parameter(torch.full((2,), float(rank + 1))), nn.Parameter(torch.zeros(1))]
        weights[0].grad = torch.full((2,), float(rank))
        found["loss"] = float(distributed.average_gradients(weights, torch.tensor(float(2 * rank))))
        found["grads"] = [weights[0].grad.tolist(), weights[1].grad]
        norm = nn.BatchNorm1d(2)
        norm.running_mean.fill_(float(rank))
        distributed.average_buffers(norm)
        found["running_mean"] = norm.running_mean.tolist()
        found["predict_same"] = bool(torch.equal(predict(model, loader)[0], expected_logits))
        found["deadline"] = Deadline(0.0 if rank == 0 else float("inf"), clock=lambda: 1.0).expired()
        write_text_atomically(Path(folder) / f"written-{rank}.txt", "x")
        # a short fit: every process ends with the same weights though each trains on other rows
        torch.manual_seed(rank)  # different starting weights: the start is taken from process 0
        net = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
        train = BatchLoader(x, y, [0.5] * 3, [0.25] * 3, batch_size=4, shuffle=True, seed=rank,
                            indices=distributed.share_rows(np.arange(48), 0, seed=0))
        fit(net, train, TrainConfig(epochs=2, batch_size=8, lr=0.05, patience=None))
        found["fit_digests"] = distributed.digests(net.state_dict().values())
    (Path(folder) / f"found-{rank}.json").write_text(json.dumps(found))
    os._exit(0)  # as the command does under torchrun: gloo's threads sometimes abort the interpreter's teardown


def test_collectives_agree_over_two_processes(tmp_path):
    torch.multiprocessing.spawn(_collectives, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    found = [json.loads((tmp_path / f"found-{rank}.json").read_text()) for rank in range(2)]
    assert [f["world"] for f in found] == [[0, 2, "gloo"], [1, 2, "gloo"]]
    shares = [set(f["share"]) for f in found]
    assert shares[0] | shares[1] == set(range(103))  # every row, padded to equal shares
    assert len(found[0]["share"]) == len(found[1]["share"]) == 52
    assert all(sum(row < 20 for row in f["share"]) == 10 for f in found)  # as many failures each
    assert [f["batch"] for f in found] == [32, 32]
    assert [f["any"] for f in found] == [True, True] and [f["least"] for f in found] == [10.0, 10.0]
    assert [f["sums"] for f in found] == [[2.0, 1.0], [2.0, 1.0]]
    assert [f["loss"] for f in found] == [1.0, 1.0]
    assert [f["grads"] for f in found] == [[[0.5, 0.5], None]] * 2  # no process had one: none
    assert [f["running_mean"] for f in found] == [[0.5, 0.5]] * 2
    assert all(f["predict_same"] for f in found)
    assert [f["deadline"] for f in found] == [True, True]
    assert (tmp_path / "written-0.txt").exists() and not (tmp_path / "written-1.txt").exists()
    assert found[0]["fit_digests"][0] == found[0]["fit_digests"][1] and found[0]["fit_digests"] == found[1]["fit_digests"]


def test_a_lone_process_is_unchanged():
    rows = np.arange(10)
    weights = [nn.Parameter(torch.ones(2))]
    weights[0].grad = torch.full((2,), 3.0)
    with distributed.process_group(torch.device("cpu")) as world:
        assert (world.rank, world.size, world.backend, world.main) == (0, 1, None, True)
        assert distributed.share_rows(rows, 3, 0) is rows
        assert float(distributed.average_gradients(weights, torch.tensor(2.0))) == 2.0
        assert weights[0].grad.tolist() == [3.0, 3.0]
        assert distributed.any_rank(False) is False and distributed.sums(1.0, 2.0) == (1.0, 2.0)
        assert distributed.writes_files() and distributed.describe("cpu") == {"processes": 1, "backend": None,
                                                                            "devices": ["cpu"]}


def test_a_batch_that_does_not_divide_is_refused():
    assert distributed.batch_share(64, 4) == 16
    with pytest.raises(Exception, match="does not divide over 3 processes"):
        distributed.batch_share(64, 3)


# ------------------------------------------------------------------ whole repairs under torchrun


def _environment() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _torchrun(*arguments, processes: int = 2) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
            "-m", "archrepair", *map(str, arguments)]


def _run(command: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=HANG_GUARD, env=_environment())
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung: no end within {HANG_GUARD} s: {' '.join(command)}")


def _report(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _start(report: dict) -> np.ndarray:
    """:func:`_weights` before the search: logit 2 (``--original-logit``) on ``original`` (else ``none``), 0 elsewhere."""
    logits = []
    for edge in report["genotype"]["alphas"]:
        first = "original" if "original" in edge["weights"] else "none"
        row = np.array([2.0 if op == first else 0.0 for op in sorted(edge["weights"])])
        logits.append(np.exp(row) / np.exp(row).sum())
    return np.concatenate(logits)


def _weights(report: dict) -> np.ndarray:
    """Every edge's softmax architecture weights, edge after edge, operations in name order."""
    return np.concatenate([[edge["weights"][op] for op in sorted(edge["weights"])]
                           for edge in report["genotype"]["alphas"]])


def _right(report: dict) -> float:
    held = report["judged"]["returned"]["holdout"]
    return held["accuracy_after"] * held["examples"]


@pytest.fixture(scope="module")
def one_and_two(digits_checkpoint, tmp_path_factory):
    """The same repair in one process (``python -m archrepair``) and in two (torchrun)."""
    folder = tmp_path_factory.mktemp("spread")
    one = _report(_run([sys.executable, "-m", "archrepair", "repair", digits_checkpoint, "--out", folder / "one",
                        *SEARCH]))
    two = _report(_run(_torchrun("repair", digits_checkpoint, "--out", folder / "two", *SEARCH)))
    return one, two, folder


def test_two_processes_search_like_one(one_and_two):
    one, two, folder = one_and_two
    assert one["distributed"] == {"processes": 1, "backend": None, "devices": ["cpu"]}
    assert two["distributed"] == {"processes": 2, "backend": "gloo", "devices": ["cpu", "cpu"]}
    digests = two["details"]["architecture_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]  # bit-identical architecture in both processes
    moved = np.abs(_weights(one) - _start(one)).max()
    assert moved >= 2 * ARCHITECTURE_TOLERANCE, f"the search moved the weights by {moved:.3f} only: nothing compared"
    assert np.abs(_weights(one) - _weights(two)).max() <= ARCHITECTURE_TOLERANCE
    assert one["kept"] == two["kept"]
    assert abs(_right(one) - _right(two)) <= HOLDOUT_ROWS
    assert sorted(p.name for p in (folder / "two").iterdir()) == sorted(p.name for p in (folder / "one").iterdir())
    assert not (folder / "two.work").exists() and not list(folder.glob(".*.tmp"))


def test_a_bad_option_ends_every_process_without_a_traceback(digits_checkpoint, tmp_path):
    for option, says in ((["--search-batch-size", "63"], "does not divide over 2 processes"),
                         (["--no-such-option"], "unrecognized arguments"),
                         (["--dry-run"], "--dry-run times one process; run it without torchrun")):
        done = _run(_torchrun("repair", digits_checkpoint, "--out", tmp_path / "x", *SEARCH, *option))
        assert done.returncode != 0
        ours = [line for line in done.stderr.splitlines() if line.startswith("archrepair") and ": error" in line]
        assert len(ours) == 1 and says in ours[0], done.stderr[-2000:]
        assert "archrepair/" not in done.stderr  # no traceback through our code (torchrun adds its own summary)
        assert not (tmp_path / "x").exists() and not (tmp_path / "x.work").exists()
    done = _run(_torchrun("evaluate", digits_checkpoint))
    assert done.returncode != 0 and "archrepair evaluate: error: only repair runs over several processes" in done.stderr


def test_a_method_that_cannot_be_spread_runs_in_process_zero(digits_checkpoint, tmp_path):
    done = _run(_torchrun("repair", digits_checkpoint, "--out", tmp_path / "bn", "--method", "bn-adapt",
                          "--train-examples", "400", "--count", "15", "--json"))
    report = _report(done)
    assert "bn-adapt cannot be spread over processes; it runs in process 0 alone" in done.stderr
    assert report["distributed"]["processes"] == 1 and (tmp_path / "bn" / "report.json").exists()


@pytest.mark.parametrize("method", ["auto", "augmix"])
def test_the_default_and_a_data_level_method_spread_under_a_time_budget(digits_checkpoint, tmp_path, method):
    report = _report(_run(_torchrun("repair", digits_checkpoint, "--out", tmp_path / method, "--method", method,
                                    "--budget-seconds", "15", "--train-examples", "400", "--count", "15", "--json")))
    assert report["distributed"]["processes"] == 2 and report["kept"] in ("repaired", "original")
    if method == "auto":  # its candidates shared the budget the processes agreed on
        assert [c["status"] for c in report["details"]["candidates"]][:3] == ["ran"] * 3


def _processes_running(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_a_killed_spread_repair_leaves_nothing_running_and_resumes_to_the_same_result(one_and_two, digits_checkpoint,
                                                                                       tmp_path):
    _, two, _ = one_and_two
    out = tmp_path / "killed"
    launcher = subprocess.Popen(_torchrun("repair", digits_checkpoint, "--out", out, *SEARCH), env=_environment(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    state, waited = out.with_name("killed.work") / "search.pt", 0.0
    while not state.exists() and launcher.poll() is None and waited < HANG_GUARD:
        time.sleep(0.2)
        waited += 0.2
    assert state.exists(), "the search never saved an epoch"
    launcher.send_signal(signal.SIGTERM)
    try:
        launcher.wait(timeout=HANG_GUARD)
    except subprocess.TimeoutExpired:
        launcher.kill()
        pytest.fail("the launcher did not end after SIGTERM")
    waited = 0.0
    while _processes_running(str(out)) and waited < 60:
        time.sleep(0.5)
        waited += 0.5
    assert not _processes_running(str(out)), "a process outlived the launcher"
    resumed = _report(_run(_torchrun("repair", digits_checkpoint, "--out", out, *SEARCH, "--resume")))
    assert resumed["details"]["notes"] and "resumed" in " ".join(resumed["details"]["notes"])
    assert np.array_equal(_weights(resumed), _weights(two))
    assert resumed["kept"] == two["kept"] and _right(resumed) == _right(two)
