"""The cached block inputs' cost: ArchRepair on ResNet-18 (width 0.25, shared CIFAR-10) with the
cache and without it, same task and seed, side by side (#13).

    python benchmarks/cache_cost.py [--models undertrained,converged] [--grid 0.003,0.01,0.03]
        [--train-examples 5000] [--cache-order on,off,off,on]

D_fail = 1,000 misclassified test examples (the paper's split, seeded), D_repair = D_fail plus
``--train-examples`` training examples (0: all 46,000 fit rows). Prints each run (its phases, the
dry-run estimate, where the search's seconds went), then the wall-time ratio cached/uncached and
whether the kept/original decision, the block and the architecture are the same.
``--cache-order on,off,off,on`` repeats the pair in mirrored order: the ratio of the summed times is
then insensitive to a linear drift of the machine's speed (on this 2-core machine sequential runs
differ by up to 30%). (This was ``repair_cifar10.py --compare-cache`` before #30 replaced the
evaluation scripts by studies.)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import BASE_MODELS, prepared, print_headline

from archrepair._repair import ArchRepair, ArchRepairConfig
from archrepair._repair.pipeline import run_repair
from archrepair._search import SearchConfig, SearchSpace
from archrepair.train import TrainConfig

def archrepair(lr: float, args: argparse.Namespace) -> ArchRepair:
    return ArchRepair(ArchRepairConfig(
        space=SearchSpace(original_logit=args.original_logit),
        search=SearchConfig(epochs=args.search_epochs, warmup_epochs=1, lr=lr, arch_lr=args.arch_lr),
        finetune=TrainConfig(epochs=args.finetune_epochs, batch_size=64, lr=lr, weight_decay=5e-4, patience=3)))


def compare_cache(kind: str, seed: int, lr: float, task, args: argparse.Namespace) -> dict:
    """ArchRepair on ``task`` with the prefix cache and without, in the order ``args.cache_order``:
    the ratio of the summed wall times, and whether every run agrees with the first."""
    runs = []
    for setting in args.cache_order.split(","):
        task.config.prefix_cache = setting == "on"
        task.views.clear()
        started = time.perf_counter()
        _, report = run_repair(archrepair(lr, args), task)
        report["wall_seconds"] = time.perf_counter() - started
        runs.append((setting == "on", report))
        print(f"{kind} | {seed} | cache {setting} | {lr} | {report['eval_change_points']:+.2f} | {report['kept']} | "
              f"{report.get('block') or '-'} | {report['wall_seconds']:.0f} | phases {report['phase_seconds']} | "
              f"estimated {report['estimate_seconds']} | search {search_split(report)} | cache {report['prefix_cache']}",
              flush=True)

    def total(cached: bool, key) -> float:
        return sum(key(report) for on, report in runs if on == cached)

    first = runs[0][1]
    return {"time_ratio": total(True, lambda r: r["wall_seconds"]) / total(False, lambda r: r["wall_seconds"]),
            "method_time_ratio": total(True, lambda r: sum(r["phase_seconds"].values()))
            / total(False, lambda r: sum(r["phase_seconds"].values())),
            "same_decision": all(r["kept"] == first["kept"] for _, r in runs),
            "same_genotype": all(r["genotype"] == first["genotype"] for _, r in runs),
            "same_block": all(r["block"] == first["block"] for _, r in runs),
            "change_difference_points": max(abs(r["eval_change_points"] - first["eval_change_points"]) for _, r in runs),
            "candidate_val_difference": max(abs(r["val_accuracy_repaired"] - first["val_accuracy_repaired"])
                                            for _, r in runs)}


def search_split(report: dict) -> dict:
    """Where the search's seconds went, summed over its epochs: weight steps, architecture steps,
    the per-epoch validation passes and the rest (batches of the weight half, book-keeping)."""
    epochs = report["details"].get("search", [])
    parts = {part: sum(epoch.get(f"{part}_seconds", 0.0) for epoch in epochs)
             for part in ("weight", "architecture", "validation")}
    parts["rest"] = sum(epoch["seconds"] for epoch in epochs) - sum(parts.values())
    return {part: round(seconds, 1) for part, seconds in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", default="0.003,0.01,0.03", help="learning rates, comma-separated (runs at each)")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--models", default="undertrained,converged")
    parser.add_argument("--search-epochs", type=int, default=6)
    parser.add_argument("--finetune-epochs", type=int, default=8)
    parser.add_argument("--train-examples", type=int, default=5000, help="training examples in D_repair (0: all)")
    parser.add_argument("--original-logit", type=float, default=SearchSpace.original_logit,
                        help="initial architecture logit of the original operations")
    parser.add_argument("--arch-lr", type=float, default=SearchConfig.arch_lr)
    parser.add_argument("--fail-weight", type=float, default=1.0, help="times each failure counts per epoch")
    parser.add_argument("--plain-validation", action="store_true",
                        help="validate on every held-out example (results before 2026-11-30 were made so)")
    parser.add_argument("--cache-order", default="on,off",
                        help="the runs in order, e.g. on,off,off,on to cancel a drift of the machine's speed")
    args = parser.parse_args()
    if set(args.cache_order.split(",")) != {"on", "off"}:
        parser.error(f"--cache-order takes on and off, comma-separated, both present; got {args.cache_order!r}")
    print("model | seed | cache | lr | change pts | kept | block | wall seconds | phases | estimate | search | cache")
    figures: dict[str, list[float]] = {}
    for kind in args.models.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            task = prepared(BASE_MODELS[kind], 1000, seed, train_examples=args.train_examples,
                            thin_validation=not args.plain_validation, fail_weight=args.fail_weight).task()
            for lr in (float(v) for v in args.grid.split(",")):
                for key, value in compare_cache(kind, seed, lr, task, args).items():
                    figures.setdefault(f"{kind}_cache_{key}", []).append(float(value))
    print_headline({key: round(float(np.mean(values)), 2) for key, values in figures.items()})


if __name__ == "__main__":
    main()
