"""Repairs judged under the held-out protocol, every method on the same wall-clock budget (#14).

    python benchmarks/repair_heldout.py [--models undertrained,converged] [--seeds 0,1,2,3,4,5]
        [--budget-seconds 120] [--count 750] [--train-examples 5000] [--pause-file PATH]

Runs (or reads from the shared store, see ``heldout_rows.py``) every method of ``--methods`` on
both shared models and every seed; prints one table per model (mean ± sd over seeds of the returned
model's and the candidate's figures), the paired comparisons the issue names (ArchRepair's
candidate against ``train-more-block`` and against ``archrepair-fixed-arch``; distillation's effect
on negative flips), and one JSON object.
"""

from __future__ import annotations

import argparse

import numpy as np
from common import print_headline
from heldout_rows import add_arguments, figure, paired, rows_and_tables, wilcoxon_p

METHODS = ("archrepair,archrepair-fixed-arch,block-gradient,network-gradient,train-more-block,train-more-network,"
           "archrepair+distill,network-gradient+distill")


def bootstrap_interval(values: np.ndarray, seed: int = 0, draws: int = 2000) -> list[float]:
    """95% percentile bootstrap interval of the mean of ``values``."""
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(draws, len(values)), replace=True).mean(1)
    return [round(float(v), 2) for v in np.percentile(means, [2.5, 97.5])]


def comparisons(rows: list[dict], kind: str) -> dict:
    """The paired figures of one model: ArchRepair's candidate against train-more-block and
    fixed-arch (hold-out change), and distillation's negative flips and D_fail fixes."""
    mine = [row for row in rows if row["model"] == kind]
    figures = {}
    gains = np.array([figure(r, "candidate", "change_points") for r in mine if r["method"] == "archrepair"])
    if len(gains):
        figures[f"{kind}_archrepair_candidate_gains_in"] = f"{int((gains > 0).sum())}/{len(gains)}"
    for other in ("train-more-block", "archrepair-fixed-arch"):
        differences, pairs = paired(mine, "archrepair", other, "candidate")
        if len(pairs):
            print(f"{kind}: archrepair - {other} (candidate hold-out change, per seed): "
                  f"{', '.join(f'{d:+.2f}' for d in differences)}; mean {differences.mean():+.2f}, "
                  f"bootstrap 95% {bootstrap_interval(differences)}, better in {int((differences > 0).sum())}/"
                  f"{len(pairs)}, Wilcoxon p {wilcoxon_p(differences)}")
            figures[f"{kind}_archrepair_minus_{other}_points"] = round(float(differences.mean()), 2)
    for base in ("archrepair", "network-gradient"):
        flips, pairs = paired(mine, base, f"{base}+distill", "candidate", "negative_flip_rate")
        if len(pairs):
            plain = np.array([figure(r, "candidate", "negative_flip_rate") for r in mine if r["method"] == base
                              and (r["model"], r["seed"]) in pairs])
            fixes = paired(mine, base, f"{base}+distill", "candidate", "fail_fixed_rate")[0]
            weights = [r["retain_weight"] for r in mine if r["method"] == f"{base}+distill"]
            print(f"{kind}: {base}+distill (λ by validation: {weights}): negative flips {100 * plain.mean():.2f}% -> "
                  f"{100 * (plain - flips).mean():.2f}%, D_fail fixed changes by {-100 * fixes.mean():+.1f} points")
            figures[f"{kind}_{base}_distill_flip_ratio"] = round(float((plain - flips).mean() / plain.mean()), 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, METHODS, "0,1,2,3,4,5")
    args = parser.parse_args()
    rows, headline = rows_and_tables(args)
    for kind in args.models.split(","):
        headline |= comparisons(rows, kind)
    print_headline(headline)


if __name__ == "__main__":
    main()
