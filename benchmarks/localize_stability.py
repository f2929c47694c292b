"""The paper's Fig. 2 study: vulnerable neurons per block for several failure-set sizes, plain
spectrum (Eq. 5) against reweighted (Eq. 6), on ResNet-18 (width 0.25, converged, shared CIFAR-10).

Stability is measured as (a) how many failure-set sizes agree with the most common top block and
(b) the mean Spearman correlation of the per-block counts between consecutive sizes.

    python benchmarks/localize_stability.py [--sizes 100,200,500,1000] [--level 50]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
from common import ROOT, cifar10_spec, load_cached_model, print_headline
from scipy.stats import spearmanr

from archrepair.base_model import make_loader
from archrepair.data import BatchLoader, load_data, select_failures
from archrepair.data.repair_set import repair_set
from archrepair.evaluate import predict_logits
from archrepair._localize import (
    LocalizeConfig,
    collect_statistics,
    find_neuron_layers,
    summarise,
)
from archrepair._localize.spectrum import suspiciousness
from archrepair.models import default_blocks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,200,500,1000")
    parser.add_argument("--level", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-name", default="resnet18-w0.25-converged", help="cached checkpoint to use")
    parser.add_argument("--plot", default=str(ROOT / "benchmarks" / "results" / "localize_stability.png"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    model, record = load_cached_model(args.model_name)
    data = load_data(cifar10_spec())
    blocks = default_blocks(model)
    height, width, channels = record.input_shape
    layers = find_neuron_layers(model, blocks, (channels, height, width))
    predictions = predict_logits(model, make_loader(data, "test", record)).argmax(1).numpy()
    config = LocalizeConfig(level=args.level)
    key = f"top{args.level}"
    counts = {"spectrum": [], "reweighted": []}
    for size in sizes:
        split = select_failures(predictions, data.y_test, size, args.seed, protocol="paper")
        repair = repair_set(data, split, 1000, args.seed)
        loader = BatchLoader(repair.x, repair.y, record.mean, record.std, batch_size=256)
        stats = collect_statistics(model, layers, loader, config.threshold, progress=False)
        report = summarise(stats, layers, blocks, config)
        counts["reweighted"].append([row.vulnerable[key] for row in report.blocks])
        counts["spectrum"].append(_spectrum_counts(stats, layers, blocks, config, key))
    print(f"vulnerable neurons per block at epsilon_{args.level} (failure-set sizes {sizes})")
    print("size | " + " | ".join(f"{kind} {b}" for kind in counts for b in blocks))
    for i, size in enumerate(sizes):
        print(f"{size} | " + " | ".join(str(c) for kind in counts for c in counts[kind][i]))
    figures = {}
    for kind, table in counts.items():
        tops = [blocks[int(np.argmax(row))] for row in table]
        block, agree = Counter(tops).most_common(1)[0]
        rhos = [spearmanr(a, b).statistic for a, b in zip(table, table[1:])]
        figures[f"{kind}_top_block"] = block
        figures[f"{kind}_agreement"] = f"{agree}/{len(sizes)}"
        figures[f"{kind}_mean_spearman"] = round(float(np.nanmean(rhos)), 3)
        print(f"{kind}: top block per size {tops}; consecutive-size Spearman {np.round(rhos, 3).tolist()}")
    _plot(counts, blocks, sizes, args.level, Path(args.plot))
    print(f"plot: {args.plot}")
    print_headline(figures)


def _spectrum_counts(stats, layers, blocks, config, key):
    """The same top-k count with the plain spectrum score (no gradient reweighting)."""
    import torch

    scores = suspiciousness(config.formula, stats.n_ac, stats.n_nc, stats.n_am, stats.n_nm)
    block_of = torch.cat([torch.full((layer.size,), blocks.index(layer.block)) for layer in layers])
    level = int(key[3:])
    epsilon = scores.sort(descending=True).values[min(level, len(scores)) - 1]
    chosen = block_of[(scores >= epsilon) & (scores > 0)]
    return torch.bincount(chosen, minlength=len(blocks)).tolist()


def _plot(counts, blocks, sizes, level, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    x = np.arange(len(sizes))
    bar = 0.8 / len(blocks)
    for axis, (kind, table) in zip(axes, counts.items()):
        table = np.array(table)
        for b, block in enumerate(blocks):
            axis.bar(x + (b - (len(blocks) - 1) / 2) * bar, table[:, b], bar, label=block)
        axis.set_xticks(x, [str(s) for s in sizes])
        axis.set_xlabel("failures in D_repair")
        axis.set_title(f"{kind} (epsilon_{level})")
    axes[0].set_ylabel("vulnerable neurons")
    axes[1].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
