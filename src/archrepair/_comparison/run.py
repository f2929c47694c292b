"""Run several repair methods on one model and failure set, over seeds, with one budget."""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import asdict, replace

import numpy as np
import torch

from .. import __version__
from .._checks import check_same_settings, environment
from ..fileio import json_ready
from ..plan import Prepared, run_plan
from .record import Comparison, ComparisonRow


def compare_methods(
    prepared: Prepared,
    methods: list[str],
    seeds: list[int],
    on_row: Callable[[ComparisonRow, Comparison], None] | None = None,
    on_error: Callable[[dict, Comparison], None] | None = None,
    previous: Comparison | None = None,
) -> Comparison:
    """Every method in ``methods`` on every seed in ``seeds``: the plan of ``prepared`` with its method
    and its task's seed replaced (the seed draws ``D_repair``'s training sample and its splits, and
    seeds the method), all with the plan's budget and settings, each run by
    :func:`~archrepair.plan.run_plan`. ``D_fail`` (``prepared.split``) is the same for every run; each
    row is evaluated on the same test examples. Every method's settings are checked on this model
    before the first run.
    ``on_row(row, comparison_so_far)`` is called after every run (to save partial results), and
    ``on_error(error, comparison_so_far)`` after a run that raised (recorded in
    ``comparison.errors``; the other runs go on); ``previous``: an interrupted comparison of the
    same setting whose finished runs are kept."""
    plan, problem, split = prepared.plan, prepared.problem, prepared.split
    for name in methods:
        prepared.for_method(name)  # an unknown method, a budget or a setting it cannot take fails before any work
    task = replace(plan.task, device=str(problem.device))
    comparison = Comparison(
        rows=[], methods=list(methods), seeds=list(seeds), budget=asdict(plan.budget),
        config=json_ready(asdict(plan.settings)) | {"task": {k: v for k, v in asdict(task).items() if k != "seed"}},
        base_checkpoint=plan.checkpoint, base_fingerprint=problem.fingerprint,
        data={"spec": problem.data.spec, "fingerprint": problem.data.fingerprint},
        failures={"seed": split.seed, "fail_indices": [int(i) for i in split.fail_indices]},
        versions={"archrepair": __version__, "torch": torch.__version__, "numpy": np.__version__,
                  "python": platform.python_version()},
        environment={**environment(), "device": task.device, "amp": task.amp},
    )
    finished = _finished_runs(previous, comparison)
    before = problem.test_predictions("evaluating before")
    for seed in seeds:
        for name in methods:
            row = finished.get((name, seed))
            if row is None:
                try:
                    result, report = run_plan(prepared.for_method(name), seed=seed, before=before)
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
