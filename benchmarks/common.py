"""Helpers shared by the benchmark scripts: where the shared data and the cache live, JSON output."""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("ARCHREPAIR_BENCH_CACHE", ROOT / "benchmarks" / "cache"))  # models a benchmark trains
MODELS = Path(os.environ.get("ARCHREPAIR_MODELS_DIR", ROOT.parent / "shared" / "models"))  # base models every machine has


def shared_data_dir() -> Path:
    """``$ARCHREPAIR_DATA_DIR`` or ``../shared/data`` beside the repository."""
    path = Path(os.environ.get("ARCHREPAIR_DATA_DIR", ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        raise SystemExit(f"shared data not found at {path}; set ARCHREPAIR_DATA_DIR")
    return path


def cifar10_spec() -> str:
    """Data spec of the shared full CIFAR-10 (JPEG q75 copy)."""
    return f"imagefolder:{shared_data_dir() / 'cifar10' / 'cifar10-jpeg-q75.tar.gz'}"


def code_commit() -> str:
    """The commit the library code ran at (:func:`archrepair._checks.code_version`)."""
    from archrepair._checks import code_version

    return code_version()


def print_headline(figures: dict) -> None:
    """The benchmark's last line: one JSON object with its headline figures."""
    print(json.dumps(figures), flush=True)


# the two shared ResNet-18 w0.25 models the repair benchmarks start from
BASE_MODELS = {"undertrained": "resnet18-w0.25-deployed80", "converged": "resnet18-w0.25-converged"}
TRAIN_SECONDS = {"resnet18-w0.25-converged": 640, "resnet18-w0.25-deployed80": 740, "resnet18-w0.25-e21": 830}


def model_path(name: str) -> Path:
    """Where base model ``name`` is: the shared base models (``$ARCHREPAIR_MODELS_DIR``, default
    ``../shared/models``) first, then the benchmark cache (models ``train_base.py`` trained here)."""
    for folder in (MODELS, CACHE):
        if (folder / name / "model.json").exists():
            return folder / name
    minutes = f" (about {TRAIN_SECONDS[name] // 60} minutes on 2 cores)" if name in TRAIN_SECONDS else ""
    raise SystemExit(f"base model {name!r} is neither in {MODELS} nor in {CACHE}: set ARCHREPAIR_MODELS_DIR, or train "
                     f"it with `python benchmarks/train_base.py --name {name}`{minutes}")


def load_cached_model(name: str):
    """Base model ``name`` (see :func:`model_path`) and its record."""
    from archrepair.checkpoint import load_checkpoint

    return load_checkpoint(model_path(name))


def prepared(name: str, count: int = 1000, seed: int = 0, protocol: str = "paper", device: str = "cpu",
             **task_settings):
    """The repair plan of base model ``name`` (:func:`model_path`) on the shared CIFAR-10 with
    ``count`` of its test failures chosen with ``seed`` under ``protocol``, prepared
    (:func:`archrepair.plan.prepare`): ``.problem`` holds the model and data, ``.split`` the failures,
    ``.task(seed)`` builds what every method is given (``task_settings``: its ``TaskConfig`` fields)."""
    from archrepair import TaskConfig
    from archrepair.plan import RepairPlan, prepare

    task = TaskConfig(seed=seed, device=device, **task_settings)
    return prepare(RepairPlan(str(model_path(name)), data=cifar10_spec(), count=count, protocol=protocol, task=task))


def relative_data_spec(out: Path) -> None:
    """Record the data spec of the checkpoint in ``out`` relative to the repository root
    (``imagefolder:../shared/data/...``, as the shared models record it), so that a committed folder
    loads on any machine with ``../shared`` beside the repository; a spec without an absolute path is
    left as it is."""
    from archrepair.fileio import write_text_atomically

    record = json.loads((out / "model.json").read_text())
    kind, _, path = record["data"]["spec"].partition(":")
    if not path.startswith("/"):
        return
    record["data"]["spec"] = f"{kind}:{os.path.relpath(path, ROOT)}"
    write_text_atomically(out / "model.json", json.dumps(record, indent=1))
