"""Does the architecture step help? ``archrepair`` against ``archrepair-fixed-arch`` paired over 8
seeds, and the paper's Table 10 (block-level against layer-level ArchRepair) on the same seeds and
budget (#15).

    python benchmarks/architecture_matters.py [--seeds 0,1,2,3,4,5,6,7] [--budget-seconds 120]
        [--pause-file PATH] [--report-only]

``archrepair-fixed-arch`` is ArchRepair without the architecture step (same epochs, same weight-step
schedule and batches). Three cells, each run under the default protocol and retain setting (runs
shared with the other benchmarks through ``heldout_rows.py``):

* **primary, named in advance**: the under-trained shared model with test-set failures; the figure is
  the *candidate's* change on the test hold-out (the repaired model before the keep-or-discard
  choice);
* the converged shared model with test-set failures (same figure);
* the under-trained model with ``D_fail`` from Gaussian noise at severity 3 (smoothing operations
  are in the search space); the figure is the candidate's change on the hold-out's corrupted images.

Per cell: ArchRepair minus fixed-arch per seed (candidate and returned models), mean ± sd, the exact
two-sided Wilcoxon p (8 seeds: smallest possible 0.008), the share of ArchRepair runs whose genotype
differs from the original block, seconds. Target: the primary cell better with p < 0.05; the others
not worse (mean ≥ −0.3 points, no significant loss). Table 10: ``archrepair`` minus
``archrepair-layer`` (ArchRepair on the block's convolution with the largest failure gradient) on the
two clean cells.
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
from common import print_headline
from heldout_rows import add_arguments, ensure_rows, figure, method_table, paired_summary

CELLS = {  # name: (model, corruption, methods)
    "primary": ("undertrained", None, "archrepair,archrepair-fixed-arch,archrepair-layer"),
    "converged": ("converged", None, "archrepair,archrepair-fixed-arch,archrepair-layer"),
    "gaussian_noise": ("undertrained", "gaussian_noise", "archrepair,archrepair-fixed-arch"),
}


def describe(name: str, other: str, whose: str, summary: dict) -> str:
    p = "-" if summary["p"] is None else f"{summary['p']:.3f}"
    return (f"{name} | {other} | {whose} | {', '.join(f'{v:+.2f}' for v in summary['per_pair'])} | "
            f"{summary['mean']:+.2f} ± {summary['sd']:.2f} | {summary['better_in']} | {p}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, "", "0,1,2,3,4,5,6,7")
    parser.add_argument("--cells", default=",".join(CELLS))
    args = parser.parse_args()
    headline, lines = {}, []
    for name in args.cells.split(","):
        kind, corruption, methods = CELLS[name]
        cell = copy.copy(args)
        cell.models, cell.corruption, cell.methods = kind, corruption, args.methods or methods
        rows = ensure_rows(cell)
        print(f"\ncell {name}:", end="")
        method_table(rows, kind)
        mine = [row for row in rows if row["method"] == "archrepair"]
        changed = sum(bool(row.get("genotype_changed")) for row in mine)
        headline[f"{name}_genotype_changed"] = f"{changed}/{len(mine)}"
        for other in ("archrepair-fixed-arch", "archrepair-layer"):
            for whose in ("candidate", "returned"):
                summary = paired_summary(rows, other, whose)
                if summary:
                    lines.append(describe(name, other, whose, summary))
                    headline[f"{name}_minus_{other}_{whose}"] = {k: summary[k] for k in ("mean", "better_in", "p")}
        seconds = {method: round(float(np.mean([r["seconds"] for r in rows if r["method"] == method])), 1)
                   for method in dict.fromkeys(r["method"] for r in rows)}
        headline[f"{name}_seconds"] = seconds
        held = [figure(r, "candidate", "change_points") for r in mine]
        print(f"archrepair runs whose genotype differs from the original block: {changed}/{len(mine)}; "
              f"candidate change {np.mean(held) if held else float('nan'):+.2f}; seconds per method {seconds}")
    print("\nArchRepair minus each, per seed (hold-out change in points):")
    print("cell | against | model | per seed | mean ± sd | ArchRepair better in | Wilcoxon p")
    print("\n".join(lines))
    primary = headline.get("primary_minus_archrepair-fixed-arch_candidate")
    if primary:
        headline["primary_target_met"] = bool(primary["mean"] > 0 and primary["p"] is not None and primary["p"] < 0.05)
    print_headline(headline)


if __name__ == "__main__":
    main()
