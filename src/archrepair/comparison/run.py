"""Run several repair methods on one model and failure set, over seeds, with one budget."""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import asdict
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
from ..repair import ArchRepairConfig, get_repairer, make_task
from ..repair.pipeline import run_repair
from .record import Comparison, ComparisonRow


def compare_methods(
    model: nn.Module,
    record: ModelRecord,
    data: ImageData,
    split: FailureSplit,
    methods: list[str],
    seeds: list[int],
    budget: Budget | None = None,
    config: ArchRepairConfig | None = None,
    train_examples: int | None = 5000,
    val_fraction: float = 0.2,
    device: torch.device | str = "cpu",
    base_checkpoint: str | Path | None = None,
    on_row: Callable[[ComparisonRow, Comparison], None] | None = None,
    shift: Callable[[np.ndarray], np.ndarray] | None = None,
    previous: Comparison | None = None,
    thin_validation: bool = True,
    fail_weight: float = 1.0,
    amp: bool = False,
    on_error: Callable[[dict, Comparison], None] | None = None,
) -> Comparison:
    """Every method in ``methods`` on every seed in ``seeds`` (the seed draws ``D_repair``'s training
    sample and its splits, and seeds the method), all with ``budget`` and the settings ``config``.
    ``D_fail`` (``split``) is the same for every run; each row is evaluated on the same test examples.
    ``shift``: the corruption the failures come from, to validate on shifted data too, and
    ``thin_validation``: validate like the evaluation split is built, ``fail_weight``: how much each
    failure counts in training (all three: ``make_task``).
    ``on_row(row, comparison_so_far)`` is called after every run (to save partial results), and
    ``on_error(error, comparison_so_far)`` after a run that raised (recorded in
    ``comparison.errors``; the other runs go on); ``amp``: mixed precision (``make_task``);
    ``previous``: an interrupted comparison of the same setting whose finished runs are kept."""
    budget, config = budget or Budget(), config or ArchRepairConfig()
    for name in methods:
        get_repairer(name, config, budget)  # reject an unknown method or budget before any work
    comparison = Comparison(
        rows=[], methods=list(methods), seeds=list(seeds), budget=asdict(budget),
        config=_plain(asdict(config)) | {"train_examples": train_examples, "val_fraction": val_fraction,
                                         "thin_validation": thin_validation, "fail_weight": fail_weight},
        base_checkpoint=str(base_checkpoint) if base_checkpoint else None,
        base_fingerprint=model_fingerprint(base_checkpoint) if base_checkpoint else None,
        data={"spec": data.spec, "fingerprint": data.fingerprint},
        failures={"seed": split.seed, "fail_indices": [int(i) for i in split.fail_indices]},
        versions={"archrepair": __version__, "torch": torch.__version__, "numpy": np.__version__,
                  "python": platform.python_version()},
        environment={**environment(), "device": str(device), "amp": amp},
    )
    finished = _finished_runs(previous, comparison)
    test = make_loader(data, "test", record, device=device)
    before = predict_logits(model, test, progress="evaluating before").argmax(1).numpy()
    for seed in seeds:
        task = None
        for name in methods:
            row = finished.get((name, seed))
            if row is None:
                task = task or make_task(model, record, data, split, train_examples, val_fraction, seed, device,
                                         shift=shift, thin_validation=thin_validation,
                                         fail_weight=fail_weight, amp=amp)
                try:
                    result, report = run_repair(get_repairer(name, config, budget), task, before=before,
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


def _plain(value):
    """``value`` with paths turned into strings (for JSON)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value
