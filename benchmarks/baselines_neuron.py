"""The paper's neuron-level baselines beside ArchRepair and whole-network fine-tuning (#16).

    python benchmarks/baselines_neuron.py [--seeds 0,1,2,3] [--budget-seconds 120] [--pause-file PATH]

On both shared ResNet-18 w0.25 models, under the held-out protocol and one wall-clock budget for
every method: ``arachne``, ``apricot``, ``mode``, ``archrepair`` and ``network-gradient`` (runs shared
with ``repair_heldout.py`` through the store of ``heldout_rows.py``). Prints one table per model and
ArchRepair against each baseline: the returned models' and the candidates' hold-out change paired
over every (model, seed), its mean and the exact two-sided Wilcoxon p (8 pairs: the smallest
possible p is 2/2^8 = 0.008; pairs where both returned the original tie at zero and drop out). Beside them, the ArchRepair paper's Table 5 deltas (ResNet-18, CIFAR-10), measured
with the paper's biased figure: the reference ordering, not a target.
"""

from __future__ import annotations

import argparse

from common import print_headline
from heldout_rows import add_arguments, against_archrepair, rows_and_tables

METHODS = "archrepair,network-gradient,arachne,apricot,mode"
PAPER_TABLE5_RESNET18 = {"archrepair": 88.53 - 85.00, "arachne": 85.09 - 85.00, "apricot": 86.78 - 85.00,
                         "mode": 85.48 - 85.00}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, METHODS, "0,1,2,3")
    args = parser.parse_args()
    rows, headline = rows_and_tables(args)
    for whose in ("returned", "candidate"):
        print(f"\nArchRepair against each method, {whose} models' hold-out change paired over (model, seed) "
              "(the Wilcoxon test drops zero differences: runs where both kept the original):")
        headline |= against_archrepair(rows, args.methods.split(","), PAPER_TABLE5_RESNET18, whose)
    print(f"(paper's Table 5 delta for ArchRepair itself: {PAPER_TABLE5_RESNET18['archrepair']:+.2f})")
    print_headline(headline)


if __name__ == "__main__":
    main()
