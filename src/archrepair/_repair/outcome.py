"""Before/after figures of a repair, always on the same examples.

Under the ``heldout`` protocol the honest figures are on the test hold-out, which neither the
model nor the repair has seen (:func:`holdout_figures`): accuracy before and after, the change with
a paired bootstrap 95% interval, McNemar's exact p, the negative and positive flip rates, and the
fix rate of the hold-out's own (unseen) failures. The paper's figure, accuracy on the test set
without ``D_fail`` (``eval``), is reported beside it; the fix rate is the accuracy on ``D_fail``
alone, which the repair has seen.
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


BOOTSTRAP_REPLICATES = 2000


def holdout_figures(before: np.ndarray, after: np.ndarray, labels: np.ndarray, indices: np.ndarray,
                    seed: int = 0) -> dict:
    """Paired figures of two models' predictions (``(N,)`` over the test split) on the test rows
    ``indices``: accuracies, ``change_points`` with its paired bootstrap 95% interval
    (``BOOTSTRAP_REPLICATES`` resamples of the rows, seeded), McNemar's exact two-sided p-value,
    negative flips (right before, wrong after) and positive flips as shares of the rows, and the
    share of the rows' failures before that are right after (``unseen_fix_rate``)."""
    from scipy.stats import binomtest

    indices = np.asarray(indices)
    right_before, right_after = before[indices] == labels[indices], after[indices] == labels[indices]
    count = len(indices)
    negative = int((right_before & ~right_after).sum())
    positive = int((~right_before & right_after).sum())
    difference = right_after.astype(np.float64) - right_before
    rng = np.random.default_rng(seed)
    means = np.concatenate([difference[rng.integers(0, count, (250, count))].mean(1)
                            for _ in range(BOOTSTRAP_REPLICATES // 250)])
    low, high = np.quantile(means, [0.025, 0.975])
    wrong_before = int((~right_before).sum())
    return {
        "examples": count,
        "accuracy_before": float(right_before.mean()),
        "accuracy_after": float(right_after.mean()),
        "change_points": round(100 * float(difference.mean()), 3),
        "change_interval_points": [round(100 * float(low), 3), round(100 * float(high), 3)],
        "mcnemar_p": float(binomtest(positive, negative + positive, 0.5).pvalue) if negative + positive else 1.0,
        "negative_flips": negative,
        "positive_flips": positive,
        "negative_flip_rate": negative / count,
        "positive_flip_rate": positive / count,
        "unseen_failures": wrong_before,
        "unseen_fix_rate": positive / wrong_before if wrong_before else float("nan"),
    }


def architecture_changed(model: nn.Module, block: str | None, genotype: dict | None, example: torch.Tensor) -> bool:
    """Whether the searched ``genotype`` of ``model``'s ``block`` differs from the block itself: an
    edge whose operation is not the block's own, or one of its own edges dropped (``None``: nothing
    was searched). ``example``: a batch of the model's input, to trace the block's graph."""
    if genotype is None or block is None:
        return False
    from .._search import block_graph
    from .._search.surgery import block_input
    from ..models import get_block

    originals = set(block_graph(get_block(model, block), block_input(model, block, example)).edges)
    kept = {(edge["source"], edge["target"]) for edge in genotype["edges"] if edge["op"] == "original"}
    return any(edge["op"] != "original" for edge in genotype["edges"]) or kept != originals


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def latency_figures(before: nn.Module, after: nn.Module, example: torch.Tensor, changed: bool,
                    repeats: int = 15, clock=time.perf_counter) -> dict:
    """Milliseconds of one forward pass of ``example`` (eval mode) for each model: the medians of
    ``repeats`` passes, the two models taking turns so that both see the machine alike. ``noise``:
    the interquartile range of the original's passes (how much one model's time varies here);
    ``change``: after − before, reported only when the architecture ``changed`` and the medians
    differ by more than the noise (else ``None``, with ``why``)."""
    modes = before.training, after.training
    before.eval(), after.eval()
    before(example), after(example)  # warm-up
    times = {"before": [], "after": []}
    for _ in range(repeats):
        for name, model in (("before", before), ("after", after)):
            started = clock()
            model(example)
            times[name].append(1000 * (clock() - started))
    before.train(modes[0]), after.train(modes[1])
    medians = {name: float(np.median(values)) for name, values in times.items()}
    low, high = np.percentile(times["before"], [25, 75])
    noise, difference = float(high - low), medians["after"] - medians["before"]
    why = None if changed else "the architecture did not change"
    if why is None and abs(difference) <= noise:
        why = f"within the noise ({noise:.2f} ms, the interquartile range of {repeats} passes)"
    return {"latency_ms_before": round(medians["before"], 3), "latency_ms_after": round(medians["after"], 3),
            "latency_noise_ms": round(noise, 3), "latency_change_ms": None if why else round(difference, 3),
            "latency_no_change_why": why, "latency_repeats": repeats}
