"""Run several repair methods on one model and failure set, over seeds, with one budget."""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..base_model import make_loader
from ..budget import Budget
from ..checkpoint import ModelRecord, model_fingerprint
from ..data import FailureSplit, ImageData
from .._checks import check_same_settings, environment
from ..evaluate import predict_logits
from ..fileio import json_ready
from .._repair import RepairSettings, TaskConfig, get_repairer, make_task
from .._repair.pipeline import run_repair
from .record import Comparison, ComparisonRow


def compare_methods(
    model: nn.Module,
    record: ModelRecord,
    data: ImageData,
    split: FailureSplit,
    methods: list[str],
    seeds: list[int],
    budget: Budget | None = None,
    settings: RepairSettings | None = None,
    task: TaskConfig | None = None,
    base_checkpoint: str | Path | None = None,
    on_row: Callable[[ComparisonRow, Comparison], None] | None = None,
    on_error: Callable[[dict, Comparison], None] | None = None,
    previous: Comparison | None = None,
) -> Comparison:
    """Every method in ``methods`` on every seed in ``seeds`` (the seed draws ``D_repair``'s training
    sample and its splits, and seeds the method: ``task`` with its ``seed`` replaced), all with
    ``budget`` and the shared ``settings``. ``D_fail`` (``split``) is the same for every run; each
    row is evaluated on the same test examples.
    ``on_row(row, comparison_so_far)`` is called after every run (to save partial results), and
    ``on_error(error, comparison_so_far)`` after a run that raised (recorded in
    ``comparison.errors``; the other runs go on); ``previous``: an interrupted comparison of the
    same setting whose finished runs are kept."""
    budget, settings, task = budget or Budget(), settings or RepairSettings(), task or TaskConfig()
    for name in methods:
        get_repairer(name, settings, budget)  # reject an unknown method or budget before any work
    comparison = Comparison(
        rows=[], methods=list(methods), seeds=list(seeds), budget=asdict(budget),
        config=json_ready(asdict(settings)) | {"task": {k: v for k, v in asdict(task).items() if k != "seed"}},
        base_checkpoint=str(base_checkpoint) if base_checkpoint else None,
        base_fingerprint=model_fingerprint(base_checkpoint) if base_checkpoint else None,
        data={"spec": data.spec, "fingerprint": data.fingerprint},
        failures={"seed": split.seed, "fail_indices": [int(i) for i in split.fail_indices]},
        versions={"archrepair": __version__, "torch": torch.__version__, "numpy": np.__version__,
                  "python": platform.python_version()},
        environment={**environment(), "device": task.device, "amp": task.amp},
    )
    finished = _finished_runs(previous, comparison)
    test = make_loader(data, "test", record, device=task.device)
    before = predict_logits(model, test, progress="evaluating before").argmax(1).numpy()
    for seed in seeds:
        repair_task = None
        for name in methods:
            row = finished.get((name, seed))
            if row is None:
                repair_task = repair_task or make_task(model, record, data, split, replace(task, seed=seed))
                try:
                    result, report = run_repair(get_repairer(name, settings, budget), repair_task, before=before,
                                                base_checkpoint=base_checkpoint)
                except Exception as error:  # one failed method must not end the comparison: record it
                    message = str(error).splitlines()[0] if str(error) else ""
                    comparison.errors.append({"method": name, "seed": seed, "error": f"{type(error).__name__}: {message}"})
                    if on_error is not None:
                        on_error(comparison.errors[-1], comparison)
                    continue
                row = ComparisonRow.from_report(report, sum(result.phase_seconds.values()))
            comparison.rows.append(row)
            if on_row is not None:
                on_row(row, comparison)
    return comparison


def _finished_runs(previous: Comparison | None, current: Comparison) -> dict[tuple[str, int], ComparisonRow]:
    """The rows of ``previous`` by (method, seed), if it was made with ``current``'s setting."""
    if previous is None:
        return {}
    same = ("budget", "config", "base_fingerprint", "data", "failures")
    check_same_settings({key: getattr(previous, key) for key in same}, {key: getattr(current, key) for key in same},
                        "the comparison")
    return {(row.method, row.seed): row for row in previous.rows}
