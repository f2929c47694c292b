"""ArchRepair against whole-network fine-tuning on ResNet-18 (width 0.25), shared CIFAR-10.

Two deployed models (both from train_base.py, cached):
  (a) under-trained: constant learning rate 0.03, stopped when test accuracy first reached 80%
      python benchmarks/train_base.py --schedule constant --lr 0.03 --epochs 20 --target-accuracy 0.80 \
          --name resnet18-w0.25-deployed80
  (b) converged: python benchmarks/train_base.py   (one-cycle, 15 epochs)
For each: D_fail = 1,000 misclassified test examples (seeded), D_repair = D_fail + --train-examples
training examples, 20% of which are validation examples drawn from the base model's own held-out
split (never failures). Both methods get the same task; the learning rate of each is picked from
the same grid by the same validation split; whole-network fine-tuning gets the wall time
ArchRepair took at that rate as its budget, as many epochs as fit in it (so that its learning-rate
schedule ends within it), and is stopped at it in any case. The validation split is thinned of the
base model's failures like the evaluation split (``make_task``; ``--plain-validation`` turns that off). Reported: accuracy on the test set without D_fail
before and after (same examples), the fix rate on D_fail, broken examples, time, the architecture.

    python benchmarks/repair_cifar10.py [--grid 0.003,0.01,0.03] [--seeds 0] [--train-examples 5000]

``--compare-cache`` runs ArchRepair alone, with the cached block inputs and without them (same
task, same seed), and prints the wall-time ratio, whether the kept/original decision and the
architecture are the same, and the difference of the accuracy changes. ``--cache-order on,off,off,on``
repeats the pair in mirrored order: the ratio of the summed times is then insensitive to a linear
drift of the machine's speed (on this 2-core machine sequential runs differ by up to 30%).
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
from common import cifar10_spec, load_cached_model, print_headline

from archrepair.base_model import make_loader
from archrepair.data import load_data, select_failures
from archrepair.evaluate import predict_logits
from archrepair.budget import Budget
from archrepair._repair import ArchRepair, ArchRepairConfig, Repairer, RepairSettings, TaskConfig, get_repairer, make_task
from archrepair._repair.pipeline import run_repair
from archrepair._search import SearchConfig, SearchSpace
from archrepair.train import TrainConfig

MODELS = {"undertrained": "resnet18-w0.25-deployed80", "converged": "resnet18-w0.25-converged"}


def archrepair(lr: float, args) -> ArchRepair:
    return ArchRepair(ArchRepairConfig(
        space=SearchSpace(original_logit=args.original_logit),
        search=SearchConfig(epochs=args.search_epochs, warmup_epochs=1, lr=lr, arch_lr=args.arch_lr),
        finetune=TrainConfig(epochs=args.finetune_epochs, batch_size=64, lr=lr, weight_decay=5e-4, patience=3)))


def finetune(lr: float, seconds: float, task) -> Repairer:
    """Whole-network fine-tuning with as many epochs as fit in ``seconds`` (the time ArchRepair
    took; measured per step here), so that its cosine schedule ends within the budget, and stopped
    at ``seconds`` of wall time in any case."""
    epochs = max(1, int(seconds / network_epoch_seconds(task)))
    settings = RepairSettings(train=TrainConfig(epochs=epochs, batch_size=64, lr=lr, weight_decay=5e-4, patience=3))
    return get_repairer("network-gradient", settings, Budget(seconds=seconds))


def network_epoch_seconds(task, steps: int = 20, warmup: int = 3) -> float:
    """Seconds of one whole-network training epoch over the task's fit data (batches of 64),
    from the time of ``steps`` SGD steps on a copy of the model."""
    model = copy.deepcopy(task.model).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loader = task.loader(task.fit_indices, 64, shuffle=True)
    batches = iter(loader)
    for step in range(warmup + steps):
        if step == warmup:
            started = time.perf_counter()
        images, labels = next(batches)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return (time.perf_counter() - started) / steps * len(loader)


def compare_cache(kind: str, seed: int, lr: float, task, args) -> dict:
    """ArchRepair on ``task`` with the prefix cache and without, in the order ``args.cache_order``
    (e.g. on, off, off, on: a drift of the machine's speed that is linear in time cancels): the ratio
    of the summed wall times, and whether every run agrees with the first."""
    runs = []
    for setting in args.cache_order.split(","):
        cached = setting == "on"
        task.config.prefix_cache = cached
        task.views.clear()
        started = time.perf_counter()
        _, report = run_repair(archrepair(lr, args), task)
        report["wall_seconds"] = time.perf_counter() - started
        runs.append((cached, report))
        print(row(kind, seed, f"archrepair cache {setting}", lr, report) +
              f" | phases {report['phase_seconds']} | estimated {report['estimate_seconds']}"
              f" | search {search_split(report)} | cache {report['prefix_cache']}", flush=True)

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


def row(kind, seed, method, lr, report, selected=""):
    arch = "" if not report.get("genotype") else " ".join(
        f"{e['source']}>{e['target']}:{e['op']}" for e in report["genotype"]["edges"])
    return (f"{kind} | {seed} | {method} | {lr} | {report['val_accuracy_repaired']:.4f} | "
            f"{100 * report['eval_accuracy_before']:.2f} | {100 * report['eval_accuracy_after']:.2f} | "
            f"{report['eval_change_points']:+.2f} | {100 * report['fail_fixed_rate']:.1f} | {report['eval_broken']} | "
            f"{report['total_seconds']:.0f} | {report['kept']} | {report.get('block') or '-'} | {arch} {selected}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", default="0.003,0.01,0.03")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--models", default="undertrained,converged")
    parser.add_argument("--search-epochs", type=int, default=6)
    parser.add_argument("--finetune-epochs", type=int, default=8)
    parser.add_argument("--train-examples", type=int, default=5000)
    parser.add_argument("--original-logit", type=float, default=SearchSpace.original_logit,
                        help="initial architecture logit of the original operations")
    parser.add_argument("--arch-lr", type=float, default=SearchConfig.arch_lr)
    parser.add_argument("--fail-weight", type=float, default=1.0, help="times each failure counts per epoch")
    parser.add_argument("--plain-validation", action="store_true",
                        help="validate on every held-out example (results before 2026-11-30 were made so)")
    parser.add_argument("--compare-cache", action="store_true",
                        help="ArchRepair with and without the cached block inputs, side by side (no fine-tuning baseline)")
    parser.add_argument("--cache-order", default="on,off",
                        help="with --compare-cache: the runs in order, e.g. on,off,off,on to cancel a drift of the "
                             "machine's speed")
    args = parser.parse_args()
    if set(args.cache_order.split(",")) != {"on", "off"}:
        parser.error(f"--cache-order takes on and off, comma-separated, both present; got {args.cache_order!r}")
    grid = [float(v) for v in args.grid.split(",")]
    data = load_data(cifar10_spec())
    print("model | seed | method | lr | val acc | eval before % | eval after % | change pts | D_fail fixed % | "
          "broken | seconds | kept | block | architecture")
    figures: dict[str, list[float]] = {}
    for kind in args.models.split(","):
        model, record = load_cached_model(MODELS[kind])
        predictions = predict_logits(model, make_loader(data, "test", record)).argmax(1).numpy()
        print(f"# {kind}: test accuracy {100 * (predictions == data.y_test).mean():.2f}%", flush=True)
        for seed in (int(s) for s in args.seeds.split(",")):
            split = select_failures(predictions, data.y_test, 1000, seed, protocol="paper")
            task = make_task(model, record, data, split, TaskConfig(
                args.train_examples or None, 0.2, seed, thin_validation=not args.plain_validation,
                fail_weight=args.fail_weight))
            print(f"# validation examples: {len(task.val_indices)}", flush=True)
            if args.compare_cache:
                for lr in grid:
                    for key, value in compare_cache(kind, seed, lr, task, args).items():
                        figures.setdefault(f"{kind}_cache_{key}", []).append(float(value))
                continue
            best = {}
            for lr in grid:
                started = time.perf_counter()
                _, ours = run_repair(archrepair(lr, args), task)
                spent = time.perf_counter() - started
                print(row(kind, seed, "archrepair", lr, ours), flush=True)
                _, theirs = run_repair(finetune(lr, spent, task), task)
                print(row(kind, seed, "network-gradient", lr, theirs), flush=True)
                for method, report in (("archrepair", ours), ("network-gradient", theirs)):
                    if method not in best or report["val_accuracy_repaired"] > best[method][1]["val_accuracy_repaired"]:
                        best[method] = (lr, report)
            for method, (lr, report) in best.items():
                print(row(kind, seed, method, lr, report, "<- selected by validation"), flush=True)
                figures.setdefault(f"{kind}_{method}_gain_points", []).append(report["eval_change_points"])
                figures.setdefault(f"{kind}_{method}_fix_percent", []).append(100 * report["fail_fixed_rate"])
                figures.setdefault(f"{kind}_{method}_seconds", []).append(report["total_seconds"])
    print_headline({key: round(float(np.mean(values)), 2) for key, values in figures.items()})


if __name__ == "__main__":
    main()
