"""Before/after figures of a repair, always on the same examples.

The honest figure is accuracy on the test set without ``D_fail`` (``eval``); the fix rate is the
accuracy on ``D_fail`` alone, which the repair has seen.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from ..data.scenario import FailureSplit
from ..evaluate import accuracy_report


def compare_predictions(before: np.ndarray, after: np.ndarray, labels: np.ndarray, split: FailureSplit,
                        class_names: list[str]) -> dict:
    """Accuracy before/after on the evaluation split, fixed and broken examples there, the fix rate
    on ``D_fail``, and the per-class change (percentage points) on the evaluation split."""
    keep = np.asarray(split.eval_indices)
    fail = np.asarray(split.fail_indices)
    right_before, right_after = before == labels, after == labels
    report_before = accuracy_report(before[keep], labels[keep], class_names)
    report_after = accuracy_report(after[keep], labels[keep], class_names)
    per_class = {
        name: round(100 * (report_after["per_class"][name]["accuracy"] - report_before["per_class"][name]["accuracy"]), 2)
        for name in class_names if report_before["per_class"][name]["examples"]
    }
    return {
        "eval_examples": int(len(keep)),
        "eval_accuracy_before": report_before["accuracy"],
        "eval_accuracy_after": report_after["accuracy"],
        "eval_change_points": round(100 * (report_after["accuracy"] - report_before["accuracy"]), 3),
        "eval_fixed": int((~right_before[keep] & right_after[keep]).sum()),
        "eval_broken": int((right_before[keep] & ~right_after[keep]).sum()),
        "fail_examples": int(len(fail)),
        "fail_accuracy_before": float(right_before[fail].mean()),
        "fail_fixed_rate": float(right_after[fail].mean()),
        "test_accuracy_before": float(right_before.mean()),
        "test_accuracy_after": float(right_after.mean()),
        "per_class_change_points": per_class,
        "per_class_fixed": {name: int((~right_before[keep] & right_after[keep] & (labels[keep] == index)).sum())
                            for index, name in enumerate(class_names)},
        "per_class_broken": {name: int((right_before[keep] & ~right_after[keep] & (labels[keep] == index)).sum())
                             for index, name in enumerate(class_names)},
    }


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def latency_ms(model: nn.Module, example: torch.Tensor, repeats: int = 5) -> float:
    """Median milliseconds of one forward pass of ``example`` in eval mode."""
    was_training = model.training
    model.eval()
    model(example)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model(example)
        times.append(time.perf_counter() - started)
    model.train(was_training)
    return 1000 * float(np.median(times))
