"""Run a repair method on a checkpoint and its failure split, evaluate before and after on the same
examples, and write the repaired-model folder (weights, record with the block's architecture,
report). The input checkpoint is never written to."""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass, replace
from pathlib import Path

import numpy as np

from .. import distributed
from .._checks import environment
from ..base_model import make_loader
from ..checkpoint import ModelRecord, model_fingerprint, save_checkpoint
from ..errors import ArchRepairError
from ..evaluate import predict_logits
from ..fileio import json_ready, write_text_atomically
from ..models import get_block
from .base import RepairResult, Repairer
from .document import write_report_markdown
from .outcome import architecture_changed, compare_predictions, holdout_figures, latency_figures, parameter_count
from .report import RepairReport
from .run_time import RunTime
from .task import RepairTask

REPORT_FILE = "report.json"
REPORT_VERSION = 1


def run_repair(repairer: Repairer, task: RepairTask, out: str | Path | None = None,
               base_checkpoint: str | Path | None = None, before: np.ndarray | None = None,
               run_time: RunTime | None = None, estimate: bool = True, plan: dict | None = None
               ) -> tuple[RepairResult, dict]:
    """Repair, evaluate on the test split (before and after, same examples), optionally save to ``out``.

    ``before``: the original model's test predictions, if already known (saves one pass).
    ``run_time``: the run's sessions, started by the caller (a resumed run's total counts every
    session; the report then says so; ``None``: this call alone is timed). ``estimate``: time a few
    steps of each phase first (the report's ``estimate_seconds``; a study, which never reads it, skips
    it). ``plan``: the repair's plan (:meth:`~archrepair.plan.RepairPlan.record`), stored whole in the
    report. Returns the result and the report (a JSON-ready dict). Spread over processes
    (:mod:`archrepair.distributed`), every process runs this and gets the same report; only process 0
    writes ``out``."""
    if out is not None and base_checkpoint is not None and Path(out).resolve() == Path(base_checkpoint).resolve():
        raise ArchRepairError("the output folder is the input checkpoint; choose another --out (the input is never overwritten)")
    if run_time is None:
        run_time = RunTime(None, beat_seconds=0)
        run_time.start()
    test = make_loader(task.data, "test", task.record, device=task.device, channels_last=task.channels_last)
    if before is None:
        before = predict_logits(task.model, test, progress="evaluating before").argmax(1).numpy()
    estimated = repairer.estimate(task) if estimate else {}
    result = repairer.repair(task)
    after = predict_logits(result.model, test, progress="evaluating after").argmax(1).numpy()
    figures = compare_predictions(before, after, task.data.y_test, task.split, task.data.class_names)
    candidate = after if result.kept == "repaired" or result.candidate is None else \
        predict_logits(result.candidate, test, progress="evaluating the candidate").argmax(1).numpy()
    judged = {"returned": judge(before, after, task, _home_predictions(result.model, task)),
              "candidate": judge(before, candidate, task, None if candidate is after else
                                 _home_predictions(result.candidate, task))}
    if candidate is after:
        judged["candidate"]["home"] = judged["returned"]["home"]
    example = task.example(min(256, len(task.repair.y)))
    total = run_time.stop()
    if total["runs"] > 1:
        repairer.note(result.details, f"resumed: {total['before_resume_seconds']:.1f} s before the resume, "
                                      f"{total['this_run_seconds']:.1f} s in this run, {total['total_seconds']:.1f} s "
                                      f"in all ({total['runs']} runs; the time between them not counted)")
    report = {
        "method": result.method,
        "kept": result.kept,
        "block": result.block,
        "genotype": result.genotype,
        "val_accuracy_original": result.val_accuracy_original,
        "val_accuracy_repaired": result.val_accuracy_repaired,
        "val_loss_original": result.val_loss_original,
        "val_loss_repaired": result.val_loss_repaired,
        "val_examples": int(len(task.val_indices)),
        "keep": result.keep,
        **figures,
        "parameters_before": parameter_count(task.model),
        "parameters_after": parameter_count(result.model),
        "block_parameters_before": parameter_count(get_block(task.model, result.block)) if result.block else None,
        "block_parameters_after": parameter_count(get_block(result.model, result.block)) if result.block else None,
        **latency_figures(task.model, result.model, example,
                          architecture_changed(task.model, result.block, result.genotype, example)),
        "latency_batch": int(len(example)),
        "prefix_cache": result.details.get("prefix_cache", "off: the method does not use it"),
        "phase_seconds": {k: round(v, 2) for k, v in result.phase_seconds.items()},
        "estimate_seconds": {k: round(v, 2) for k, v in estimated.items()},
        "total_seconds": total["total_seconds"],
        "run_time": total,
        "format_version": REPORT_VERSION,
        "protocol": task.split.protocol,
        "judged": judged,
        "seed": task.seed,
        "task": asdict(task.config),
        "method_config": json_ready(asdict(repairer.config)) if is_dataclass(getattr(repairer, "config", None)) else None,
        "environment": {**environment(), "device": str(task.device), "amp": task.amp},
        "distributed": distributed.describe(task.device),
        "data": {"spec": task.data.spec, "fingerprint": task.data.fingerprint},
        "field": task.split.extra.get("field"),
        "split": {"fail_indices": task.split.fail_indices, "seed": task.split.seed,
                  "repair_train_indices": task.repair.train_indices.tolist(),
                  "val_rows": task.val_indices.tolist(),
                  "field_val_indices": task.repair.field_val_indices.tolist(),
                  "field_fit_indices": task.repair.field_fit_indices.tolist(),
                  "keep_rows": {"source": task.keep.source, "indices": task.keep.indices.tolist(),
                                "shifted": task.keep.shifted, "field_indices": task.keep.field_indices.tolist()}
                  if task.keep is not None else None},
        "base_checkpoint": str(base_checkpoint) if base_checkpoint else None,
        "base_fingerprint": model_fingerprint(base_checkpoint) if base_checkpoint else None,
        "details": result.details,
        "plan": plan,
    }
    report = RepairReport.from_dict(report).to_dict()  # the JSON, as the typed report derives it
    if out is not None and distributed.writes_files():
        save_repaired(result, task.record, report, Path(out))
    return result, report


def judge(before: np.ndarray, after: np.ndarray, task: RepairTask, home_after: np.ndarray | None = None) -> dict:
    """A model's figures against the original's (test-split predictions): on the test hold-out
    (``heldout`` protocol; :func:`holdout_figures`; for a field split, the field hold-out), the fix
    rate on ``D_fail``, and the paper's figure (the change on the test set without ``D_fail``); for a
    field split, ``home``: the same figures on the whole home test set from ``home_after``, the
    model's predictions there (what the repair broke at home; no repair sees that set)."""
    labels, split = task.data.y_test, task.split
    keep, fail = np.asarray(split.eval_indices), np.asarray(split.fail_indices)
    figures = {"holdout": holdout_figures(before, after, labels, split.holdout_indices, task.seed)
               if split.holdout_indices else None,
               "fail_fixed_rate": float((after[fail] == labels[fail]).mean()),
               "paper_change_points": round(100 * float((after[keep] == labels[keep]).mean()
                                                        - (before[keep] == labels[keep]).mean()), 3),
               "home": None}
    if home_after is not None:
        home = task.data.home
        figures["home"] = holdout_figures(np.asarray(split.extra["home_predictions"]), home_after, home.y_test,
                                          np.arange(len(home.y_test)), task.seed)
    return figures


def _home_predictions(model, task: RepairTask) -> np.ndarray | None:
    """``model``'s predictions on the home test set of a field split (``None`` for other splits)."""
    if task.data.home is None or task.split.source != "field":
        return None
    loader = make_loader(task.data.home, "test", task.record, device=task.device, channels_last=task.channels_last)
    return predict_logits(model, loader, progress="evaluating on the home test set").argmax(1).numpy()


def save_repaired(result: RepairResult, base_record: ModelRecord, report: dict, out: Path) -> None:
    """Write the repaired model as a checkpoint folder plus ``report.json`` and, for people,
    ``report.md`` with its charts."""
    lineage = base_record.lineage + ([report["base_fingerprint"]] if report["base_fingerprint"] else [])
    record = replace(base_record, repair={}, lineage=lineage,
                     metrics={"test_accuracy": report["test_accuracy_after"], "eval_accuracy": report["eval_accuracy_after"]})
    if result.kept == "repaired" and result.genotype is not None:
        record.repair = {"kind": "genotype", "block": result.block, "genotype": result.genotype, "method": result.method,
                         "base_fingerprint": report["base_fingerprint"], "seed": report["seed"]}
    save_checkpoint(result.model.cpu(), record, out)
    write_text_atomically(out / REPORT_FILE, json.dumps(json_ready(report), indent=1))
    write_report_markdown(json_ready(report), out)
