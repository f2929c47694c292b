"""Benchmark scripts refuse bad options with one line of error before any work (#13's additions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("script,arguments,message", [
    ("cache_cost.py", ["--cache-order", "on,of"], "--cache-order takes on and off"),
    ("cache_cost.py", ["--cache-order", "on,on"], "both present"),
    ("step_floor.py", ["--pairs", "0"], "at least 1"),
    ("step_floor.py", ["--warmup-epochs", "3", "--search-epochs", "3"], "--warmup-epochs from 0"),
    ("step_floor.py", ["--width", "0"], "--width must be above 0"),
    ("field_digits.py", ["--methods", "auto,magic"], "unknown method(s) magic"),
    ("field_digits.py", ["--seeds", "0,x"], "--seeds takes whole numbers"),
    ("ddp_scaling.py", ["--search-epochs", "1"], "--search-epochs must be at least 2"),
    ("localize_cost.py", ["--device", "tpu9"], "unknown device 'tpu9'"),
    ("train_base.py", ["--checkpoint-every", "-1"], "a whole number of 0 or more"),
])
def test_a_benchmark_refuses_a_bad_option_in_one_line_without_a_traceback(script, arguments, message):
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *arguments], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{script}: error:") and message in last
    assert "Traceback" not in result.stderr and not result.stdout


def test_a_benchmark_never_appends_to_a_file_that_is_not_its_own(tmp_path):
    mine = tmp_path / "notes.jsonl"
    mine.write_text("my own notes\n")
    result = subprocess.run([sys.executable, str(BENCHMARKS / "field_digits.py"), "--out", str(mine)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "is not this benchmark's rows" in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr and mine.read_text() == "my own notes\n"


@pytest.mark.parametrize("arguments,environment,message", [
    (["--bogus"], {}, "unknown argument --bogus"),
    (["--prepare"], {"SHARED": "/nonexistent-shared"}, "/nonexistent-shared/data/cifar10/cifar10-jpeg-q75.tar.gz is missing"),
])
def test_the_gpu_check_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, arguments, environment, message):
    import os
    import shutil

    copy = tmp_path / "repo" / "benchmarks"
    copy.mkdir(parents=True)
    shutil.copy(BENCHMARKS / "gpu_check.sh", copy)
    result = subprocess.run(["bash", str(copy / "gpu_check.sh"), *arguments], capture_output=True, text=True,
                            timeout=60, env={**os.environ, **environment})
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("gpu_check.sh: error:") and message in result.stderr
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["benchmarks"]  # no .gpu-inputs, no results
