"""The paper's Table 1 study: gradient repair at four levels beside ArchRepair, same budget.

    python benchmarks/table1.py [--seeds 3] [--epochs 4] [--model resnet18-w0.25-deployed80]

ResNet-18 (width 0.25) on the shared CIFAR-10, the deployed (under-trained) model of
``repair_cifar10.py``; D_fail = 1,000 misclassified test examples (seed 0), D_repair = D_fail +
5,000 training examples drawn per seed. Every method gets the same epoch budget (ArchRepair
splits it between search and fine-tuning) and the same learning rate, and is repeated over the
seeds. Prints each method's change in accuracy on the test set without D_fail, its fix rate and
time, the Wilcoxon p-value against ArchRepair, and the ratio of block-level to network-level time
(the paper measured about 0.5). Writes the comparison files to benchmarks/results/table1/.
"""

from __future__ import annotations

import argparse

from common import ROOT, cifar10_spec, load_cached_model, print_headline

from archrepair.base_model import make_loader
from archrepair.budget import Budget
from archrepair._comparison import (
    compare_methods,
    markdown_table,
    summarise,
    write_comparison,
)
from archrepair.data import load_data, select_failures
from archrepair.evaluate import predict_logits
from archrepair._repair import RepairSettings, TaskConfig
from archrepair._search import SearchConfig
from archrepair.train import TrainConfig

METHODS = ["neuron-gradient", "layer-gradient", "block-gradient", "network-gradient", "archrepair"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4, help="epoch budget of every method")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--model", default="resnet18-w0.25-deployed80")
    parser.add_argument("--train-examples", type=int, default=5000)
    parser.add_argument("--plain-validation", action="store_true",
                        help="validate on every held-out example (results recorded before 2026-11-30 were made so)")
    parser.add_argument("--no-early-stopping", action="store_true",
                        help="train every method for its whole epoch budget, so that seconds compare per trained epoch")
    parser.add_argument("--no-prefix-cache", action="store_true", help="run the whole network on every step")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "table1"))
    args = parser.parse_args()
    data = load_data(cifar10_spec())
    model, record = load_cached_model(args.model)
    predictions = predict_logits(model, make_loader(data, "test", record)).argmax(1).numpy()
    split = select_failures(predictions, data.y_test, 1000, 0, protocol="paper")
    split.data_spec, split.data_fingerprint = data.spec, data.fingerprint
    print(f"{args.model}: test accuracy {100 * (predictions == data.y_test).mean():.2f}%; budget {args.epochs} epochs, "
          f"lr {args.lr}, seeds 0..{args.seeds - 1}", flush=True)
    settings = RepairSettings(search=SearchConfig(lr=args.lr),
                              train=TrainConfig(epochs=8, batch_size=64, lr=args.lr, weight_decay=5e-4,
                                                patience=None if args.no_early_stopping else 3))
    comparison = compare_methods(
        model, record, data, split, METHODS, list(range(args.seeds)), Budget(epochs=args.epochs), settings,
        TaskConfig(args.train_examples, thin_validation=not args.plain_validation, prefix_cache=not args.no_prefix_cache),
        on_row=lambda r, _: print(f"seed {r.seed} {r.method}: {r.change_points:+.2f} pts, fixed {100 * r.fix_rate:.1f}%, "
                               f"broken {r.broken}, {r.seconds:.1f} s, kept {r.kept}", flush=True),
    )
    write_comparison(comparison, args.out)
    print(markdown_table(comparison))
    summary = {entry["method"]: entry for entry in summarise(comparison)}
    ratio = summary["block-gradient"]["seconds"] / summary["network-gradient"]["seconds"]
    print(f"block-level / network-level time: {ratio:.2f} (paper: about 0.5)")
    headline = {f"{name}_gain_points": round(entry["change_points"], 2) for name, entry in summary.items()}
    for method in METHODS:
        rows = [row for row in comparison.rows if row.method == method]
        print(f"{method}: trained {', '.join(sorted({str(row.unit) for row in rows}))}; "
              f"block-input cache {', '.join(sorted({str(row.prefix_cache) for row in rows}))}")
    headline |= {"block_to_network_time_ratio": round(ratio, 2), "seeds": args.seeds, "epochs": args.epochs,
                 "early_stopping": not args.no_early_stopping, "prefix_cache": not args.no_prefix_cache}
    print_headline(headline)


if __name__ == "__main__":
    main()
