"""Per-method means and spreads over seeds, and the Wilcoxon signed-rank test between methods."""

from __future__ import annotations

import math

import numpy as np

from .record import Comparison

FIGURES = ("accuracy_after", "change_points", "fix_rate", "broken", "seconds",
           "holdout_change_points", "holdout_negative_flip_rate", "holdout_unseen_fix_rate",
           "candidate_holdout_change_points", "candidate_holdout_negative_flip_rate", "candidate_holdout_unseen_fix_rate",
           "candidate_fix_rate", "candidate_paper_change_points", "home_change_points", "home_negative_flip_rate")


def summarise(comparison: Comparison, reference: str = "archrepair") -> list[dict]:
    """One dict per method, in the comparison's order: ``runs``, ``accuracy_before`` (the same for
    every method), the mean and sample standard deviation (``_sd``; 0 with one seed) of each figure
    in :data:`FIGURES`, ``parameters_after``, ``kept_repaired`` (runs whose repaired model the keep
    rule kept), ``kept_repaired_old_rule`` (those the old validation rule would have kept) and
    ``p_vs_reference``: the Wilcoxon p-value of the change against ``reference`` (on the test
    hold-out when every run measured it, else the paper's figure). A figure some run did not
    measure is left out."""
    held_out = bool(comparison.rows) and all(row.holdout_change_points is not None for row in comparison.rows)
    figure = "holdout_change_points" if held_out else "change_points"
    p_values = wilcoxon_against(comparison, reference, figure) if reference in comparison.methods else {}
    summary = []
    for method in comparison.methods:
        rows = comparison.rows_of(method)
        if not rows:  # every run of the method failed (see ``comparison.errors``)
            continue
        entry = {"method": method, "runs": len(rows), "accuracy_before": rows[0].accuracy_before}
        for figure in FIGURES:
            if any(getattr(row, figure) is None for row in rows):  # not measured (paper protocol, older runs)
                continue
            values = np.array([getattr(row, figure) for row in rows], dtype=float)
            entry[figure] = float(values.mean())
            entry[f"{figure}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        entry["parameters_after"] = int(np.mean([row.parameters_after for row in rows]))
        entry["kept_repaired"] = sum(row.kept == "repaired" for row in rows)
        entry["kept_repaired_old_rule"] = sum((row.keep or {}).get("decision_old_rule", row.kept) == "repaired"
                                              for row in rows)
        entry["p_vs_reference"] = p_values.get(method)
        summary.append(entry)
    return summary


def wilcoxon_against(comparison: Comparison, reference: str = "archrepair", figure: str = "change_points") -> dict:
    """Two-sided Wilcoxon signed-rank p-value of ``figure`` of ``reference`` against each other
    method, paired by seed (:func:`paired_wilcoxon`)."""
    reference_values = {row.seed: getattr(row, figure) for row in comparison.rows_of(reference)}
    return {method: paired_wilcoxon([(reference_values[row.seed], getattr(row, figure))
                                     for row in comparison.rows_of(method) if row.seed in reference_values])
            for method in comparison.methods if method != reference}


def paired_wilcoxon(pairs: list[tuple[float, float]]) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value of the paired values (scipy's exact test for small
    samples). ``None`` where it is undefined: fewer than two pairs; 1.0 where every difference is zero.
    With n pairs the smallest reachable p-value is 2 / 2**n (0.25 for 3)."""
    from scipy.stats import wilcoxon

    if len(pairs) < 2:
        return None
    if all(a == b for a, b in pairs):
        return 1.0
    p = float(wilcoxon([a for a, _ in pairs], [b for _, b in pairs], zero_method="zsplit").pvalue)
    return None if math.isnan(p) else p
