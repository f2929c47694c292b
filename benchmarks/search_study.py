"""Does the architecture matter? A designed study of the settings that decide whether ArchRepair's
search can move away from the original block, and whether a move generalises (#15).

    python benchmarks/search_study.py [--seeds 100,101,102] [--models undertrained] [--budget-seconds 120]
        [--pause-file PATH]

At most a dozen configurations of ``archrepair`` (``VARIANTS``: the original operation's initial
logit, the architecture learning rate, warm-up, Beta-DARTS decay, partial channels, edge
normalisation, the discretisation rule, the search data (5,000 training rows or the whole training
set), and whether ``D_fail`` is in the architecture steps' half), on seeds disjoint from the acceptance comparison (0-7), each run saved as
it finishes (the shared store of ``heldout_rows.py``; resumable). Configurations are ranked by the
**validation** accuracy of the candidate (the repaired model before the keep-or-discard choice)
minus the original model's on the same validation examples (the whole-training-set configuration
validates on its own, larger validation part);
the test hold-out figures are printed once, after the ranking, for the record. Also per
configuration: the share of runs whose genotype differs from the original block, the block's
parameters and latency against the original's, and a plot of the architecture weights per search
epoch (``search_study.png`` beside the store: the mean weight of the original operation on the original
edges, and the largest weight of any other operation).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import print_headline
from heldout_rows import add_arguments, ensure_rows, figure

VARIANTS = {
    "default": {},
    "logit2": {"original_logit": 2.0},
    "logit0": {"original_logit": 0.0},
    "logit2-archlr0.1": {"original_logit": 2.0, "arch_lr": 0.1},
    "logit2-whole-train": {"original_logit": 2.0, "train_examples": 0},
    "logit2-nodecay": {"original_logit": 2.0, "beta_decay": 0.0},
    "logit2-nowarmup": {"original_logit": 2.0, "warmup_epochs": 0},
    "logit2-failures-weight-half": {"original_logit": 2.0, "failures_in_architecture_split": False},
    "logit2-all-channels": {"original_logit": 2.0, "partial_channels": 1},
    "logit2-no-edge-norm": {"original_logit": 2.0, "edge_normalisation": False},
    "logit2-top2": {"original_logit": 2.0, "rule": "top2"},
    "logit0-free": {"original_logit": 0.0, "arch_lr": 0.1, "beta_decay": 0.0, "failures_in_architecture_split": False},
}


def trajectory(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Per search epoch, averaged over runs: the original operation's mean weight on the edges that
    have one, and the largest weight of any other operation on any edge."""
    originals, others = [], []
    for row in rows:
        per_epoch_original, per_epoch_other = [], []
        for edges in row.get("search_weights", []):
            own = [e["weights"]["original"] for e in edges if "original" in e["weights"]]
            new = [w for e in edges for op, w in e["weights"].items() if op not in ("original", "none")]
            per_epoch_original.append(np.mean(own) if own else np.nan)
            per_epoch_other.append(max(new) if new else np.nan)
        originals.append(per_epoch_original)
        others.append(per_epoch_other)
    length = min((len(o) for o in originals), default=0)
    return (np.nanmean([o[:length] for o in originals], 0) if length else np.zeros(0),
            np.nanmean([o[:length] for o in others], 0) if length else np.zeros(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, ",".join(f"archrepair@{name}" for name in VARIANTS), "100,101,102")
    parser.set_defaults(models="undertrained", budget_seconds=120.0)
    args = parser.parse_args()
    rows = ensure_rows(args, VARIANTS)
    methods = args.methods.split(",")
    print("configuration | runs | candidate validation accuracy (mean ± sd) | change from the original's (points) | "
          "kept repaired | genotype differs | "
          "block parameters (candidate / original) | block latency ratio | seconds")
    ranking = {}
    for method in methods:
        mine = [row for row in rows if row["method"] == method]
        if not mine:
            continue
        accuracy = np.array([row["val_accuracy_repaired"] for row in mine])
        gain = 100 * (accuracy - np.array([row["val_accuracy_original"] for row in mine]))
        changed = sum(bool(row.get("genotype_changed")) for row in mine)
        parameters = np.mean([row["block_parameters"]["candidate"] / row["block_parameters"]["original"] for row in mine])
        latency = np.mean([row["block_latency_ms"]["candidate"] / max(row["block_latency_ms"]["original"], 1e-9)
                           for row in mine])
        ranking[method] = float(gain.mean())
        print(f"{method.partition('@')[2]} | {len(mine)} | {100 * accuracy.mean():.2f} ± {100 * accuracy.std():.2f} | "
              f"{gain.mean():+.2f} ± {gain.std():.2f} | "
              f"{sum(row['kept'] == 'repaired' for row in mine)}/{len(mine)} | {changed}/{len(mine)} | {parameters:.2f} | "
              f"{latency:.2f} | {np.mean([row['seconds'] for row in mine]):.0f}")
    chosen = max(ranking, key=ranking.get)
    print(f"\nchosen by validation: {chosen.partition('@')[2]}")
    print("test hold-out, read once (candidate change in points, mean over the study's seeds):")
    for method in ranking:
        mine = [row for row in rows if row["method"] == method]
        print(f"  {method.partition('@')[2]}: {np.mean([figure(r, 'candidate', 'change_points') for r in mine]):+.2f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure_, axes = plt.subplots(figsize=(7, 4))
    for method in ranking:
        own, other = trajectory([row for row in rows if row["method"] == method])
        if len(own):
            line, = axes.plot(own, label=method.partition("@")[2])
            axes.plot(other, linestyle="--", color=line.get_color())
    axes.set_xlabel("search epoch")
    axes.set_ylabel("architecture weight")
    axes.set_title("solid: original operation (mean over its edges); dashed: best other operation", fontsize=8)
    axes.legend(fontsize=6)
    figure_.tight_layout()
    figure_.savefig(Path(args.out).parent / "search_study.png", dpi=120)  # beside the store
    print_headline({"chosen": chosen.partition("@")[2], **{f"{m.partition('@')[2]}_val_change_points": round(v, 2)
                                                         for m, v in ranking.items()}})


if __name__ == "__main__":
    main()
