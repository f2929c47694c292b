"""How well ``--dry-run`` predicts a repair's time: estimated against measured seconds per phase.

    python benchmarks/dry_run.py [--model resnet18-w0.25-deployed80] [--train-examples 5000]

On a shared base model, 1,000 test failures, ``D_repair`` with ``--train-examples`` training
examples, 2 search epochs (1 warm-up) and 2 fine-tuning epochs (early stopping cannot act within
2 epochs): for ArchRepair, block-level and network-level gradient repair, the estimate
(``Repairer.estimate``, which ``repair --dry-run`` prints) and the phase seconds the run took.
"""

from __future__ import annotations

import argparse
import time

from common import prepared, print_headline

from archrepair import RepairSettings, get_repairer
from archrepair._search import SearchConfig
from archrepair.train import TrainConfig

METHODS = ["archrepair", "block-gradient", "network-gradient"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18-w0.25-deployed80")
    parser.add_argument("--train-examples", type=int, default=5000)
    args = parser.parse_args()
    task = prepared(args.model, train_examples=args.train_examples).task()
    settings = RepairSettings(search=SearchConfig(epochs=2, warmup_epochs=1),
                              train=TrainConfig(epochs=2, batch_size=64, lr=0.01, weight_decay=5e-4, patience=None))
    print("method | phase | estimated s | measured s | estimate / measured")
    headline = {}
    for name in METHODS:
        repairer = get_repairer(name, settings)
        started = time.perf_counter()
        estimate = repairer.estimate(task)
        estimating = time.perf_counter() - started
        result = repairer.repair(task)
        for phase, seconds in result.phase_seconds.items():
            guess = estimate.get(phase, 0.0)
            print(f"{name} | {phase} | {guess:.1f} | {seconds:.1f} | {guess / seconds:.2f}", flush=True)
            headline[f"{name}_{phase}_ratio"] = round(guess / seconds, 2)
        total = sum(result.phase_seconds.values())
        print(f"{name} | total | {sum(estimate.values()):.1f} | {total:.1f} | {sum(estimate.values()) / total:.2f} "
              f"(estimating took {estimating:.1f} s)", flush=True)
        headline[f"{name}_total_ratio"] = round(sum(estimate.values()) / total, 2)
        headline[f"{name}_estimate_seconds"] = round(estimating, 1)
    print_headline(headline)


if __name__ == "__main__":
    main()
