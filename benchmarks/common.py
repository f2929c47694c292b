"""Helpers shared by the benchmark scripts: where the shared data and the cache live, JSON output."""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("ARCHREPAIR_BENCH_CACHE", ROOT / "benchmarks" / "cache"))


def shared_data_dir() -> Path:
    """``$ARCHREPAIR_DATA_DIR`` or ``../shared/data`` beside the repository."""
    path = Path(os.environ.get("ARCHREPAIR_DATA_DIR", ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        raise SystemExit(f"shared data not found at {path}; set ARCHREPAIR_DATA_DIR")
    return path


def cifar10_spec() -> str:
    """Data spec of the shared full CIFAR-10 (JPEG q75 copy)."""
    return f"imagefolder:{shared_data_dir() / 'cifar10' / 'cifar10-jpeg-q75.tar.gz'}"


def print_headline(figures: dict) -> None:
    """The benchmark's last line: one JSON object with its headline figures."""
    print(json.dumps(figures), flush=True)


def load_cached_model(name: str):
    """A checkpoint under the benchmark cache, made by ``train_base.py`` (train it first if missing)."""
    from archrepair.checkpoint import load_checkpoint

    path = CACHE / name
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `python benchmarks/train_base.py --name {name}` first")
    return load_checkpoint(path)
