"""Shared fixtures: the shared data folder, tiny trained models, and a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from archrepair.base_model import TrainJob, train_base_model
from archrepair.cli import main
from archrepair.data import load_data
from archrepair.train import TrainConfig

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ARCHREPAIR_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    torch.set_num_threads(TEST_THREADS)


TEST_THREADS = int(os.environ.get("OMP_NUM_THREADS") or min(2, len(os.sched_getaffinity(0))))
"""Torch threads per test: ``OMP_NUM_THREADS`` when set, else the CPUs this process may run on
(``taskset``), at most 2; every test passes with 1 or 2."""


def _shared_folder(variable: str, name: str) -> Path:
    """``$variable`` or ``../shared/<name>``; a missing folder fails under CI and skips elsewhere."""
    path = Path(os.environ.get(variable, REPO.parent / "shared" / name))
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"shared {name} folder {path} is missing (set {variable})")
        pytest.skip(f"shared {name} folder {path} is missing")
    return path


class StepClock:
    """A clock for budget tests: every reading moves it on by one second, so a budget of N seconds
    lasts N readings (deadline checks) whatever the machine's speed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def step_clock() -> StepClock:
    return StepClock()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real data (``$ARCHREPAIR_DATA_DIR`` or ``../shared/data``)."""
    return _shared_folder("ARCHREPAIR_DATA_DIR", "data")


@pytest.fixture(scope="session")
def digits():
    return load_data("digits")


@pytest.fixture(scope="session")
def digits_checkpoint(tmp_path_factory, digits):
    """A small CNN trained for 5 epochs on the digits (about 95% test accuracy, so it has failures)."""
    out = tmp_path_factory.mktemp("models") / "digits-small"
    train_base_model(digits, TrainJob("small_cnn", 0.5, seed=0), TrainConfig(epochs=5, lr=0.05), out, torch.device("cpu"))
    return out


@pytest.fixture(scope="session")
def digits_split(digits_checkpoint, digits):
    """``(count, **options) -> FailureSplit``: ``count`` failures of the digits model's test set, seed 0
    (``options``: ``select_failures``'s, e.g. ``protocol``, ``validation``)."""
    from archrepair.base_model import make_loader
    from archrepair.checkpoint import load_checkpoint
    from archrepair.data import select_failures
    from archrepair.evaluate import predict_logits

    model, record = load_checkpoint(digits_checkpoint)
    predictions = predict_logits(model, make_loader(digits, "test", record)).argmax(1).numpy()
    return lambda count, **options: select_failures(predictions, digits.y_test, count, 0, **options)


@pytest.fixture(scope="session")
def digits_task_of(digits_checkpoint, digits, digits_split):
    """``(failures, train_examples, **split_options) -> RepairTask`` on a freshly loaded digits model."""
    from archrepair.checkpoint import load_checkpoint
    from archrepair._repair import TaskConfig, make_task

    def make(failures: int, train_examples: int, **split_options):
        model, record = load_checkpoint(digits_checkpoint)
        return make_task(model, record, digits, digits_split(failures, **split_options),
                         TaskConfig(train_examples=train_examples))

    return make


@pytest.fixture(scope="module")
def digits_task(digits_task_of):
    """A repair task on the digits model: 40 of its pool's failures, 400 training examples."""
    return digits_task_of(40, 400)


@pytest.fixture
def cli(capsys):
    """Run ``archrepair ARGS``; returns (exit status, stdout, stderr)."""

    def run(*args: str):
        status = main([str(a) for a in args])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


@pytest.fixture(scope="session")
def shared_models() -> Path:
    """The benchmarks' base checkpoints (``$ARCHREPAIR_MODELS_DIR`` or ``../shared/models``)."""
    return _shared_folder("ARCHREPAIR_MODELS_DIR", "models")
