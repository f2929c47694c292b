"""One run of a study, from its resolved configuration alone (so that any process or machine can run
it): load the model and its scenario's data, choose ``D_fail`` with the run's seed, build the task,
repair, and return the figures of :class:`~archrepair._comparison.record.ComparisonRow`."""

from __future__ import annotations

import time
from dataclasses import asdict

# the index lists a comparison row carries for rerunning it: the store keeps the config instead
BULKY = ("repair_train_indices", "val_rows")


def execute(config: dict) -> dict:
    """The outcome of the run ``config`` (:func:`~archrepair.study.spec.resolve_runs`): ``figures``,
    ``seconds`` (wall, loading included), ``code_version`` and ``environment``; or ``error`` (one
    line: its type and message), when the run raised."""
    import torch

    from .._checks import code_version, environment

    started = time.perf_counter()
    torch.set_num_threads(config["threads"])
    try:
        figures, error = _figures(config), None
    except Exception as raised:  # a failed run is recorded; the study goes on
        figures = None
        error = f"{type(raised).__name__}: {str(raised).splitlines()[0] if str(raised) else ''}"
    outcome = {"figures": figures, "seconds": round(time.perf_counter() - started, 2), "code_version": code_version(),
               "environment": environment() | {"device": config["task"]["device"]}}
    if error is not None:
        outcome["error"] = error
    return outcome


def plan_of_row(config: dict):
    """The :class:`~archrepair.plan.RepairPlan` of a resolved run configuration: the repair a study
    row is, the same the command line and the Python API build (nothing written: ``out`` is ``None``)."""
    from ..plan import RepairPlan
    from .spec import rebuilt

    settings, task, budget = rebuilt(config)
    return RepairPlan(config["checkpoint"], config["repairer"], settings, budget, task, config["data"],
                      field=config["field"], count=config["count"], protocol=config["protocol"],
                      holdout=config["holdout"])


def _figures(config: dict) -> dict:
    from .._comparison.record import ComparisonRow
    from ..plan import prepare, run_plan

    prepared = prepare(plan_of_row(config), log=lambda line: None)
    result, report = run_plan(prepared, estimate=False)
    split, settings = prepared.split, prepared.plan.settings
    row = asdict(ComparisonRow.from_report(report, sum(result.phase_seconds.values())))
    figures = {key: value for key, value in row.items() if key not in BULKY} | {"fail_count": len(split.fail_indices)}
    if settings.block is not None:  # a block named by the study (RQ3): what the localiser would have said
        figures["localization"] = _localization(prepared.task(), settings)
    if prepared.plan.task.corruption:
        figures["shift_table"] = _shift_table(config, prepared.problem, result, split)
    return figures


def _localization(task, settings) -> dict:
    """The localiser's verdict on the run's ``D_fail``: the block it chooses, its criterion and, per
    block, the vulnerable-neuron counts per level and the mean score."""
    from .._repair.methods.archrepair import localised_block

    _, report = localised_block(task, settings.localize, settings.localize_rows)
    return {"chosen": report["chosen"], "criterion": report["criterion"],
            "blocks": {row["block"]: {"vulnerable": row["vulnerable"], "mean_score": row["mean_score"]}
                       for row in report["blocks"]}}


def _shift_table(config: dict, problem, result, split) -> dict:
    """The corruption scenario's table (:func:`~archrepair.study.shifted.shift_table`) for the
    original, returned and candidate models."""
    from ..data import load_data
    from .shifted import shift_table

    clean = load_data(config["data"] or problem.record.data.get("spec", ""))
    corruption = config["task"]["corruption"]
    models = {"original": problem.model, "returned": result.model, "candidate": result.candidate}
    return shift_table(clean, corruption["name"], corruption["severity"], models, problem.record,
                       split.holdout_indices, config["seed"])
