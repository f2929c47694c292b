"""How far caching can take block-level repair: FLOP floors beside drift-robust time ratios (#13).

    python benchmarks/step_floor.py [--width 0.25] [--batch 64] [--pairs 30]

ResNet-18 (CIFAR variant) at the given width, the steps of ``step_cost.py`` (``build_step``: the
functions the repair runs). For each configuration against one network-level step:

* the FLOP ratio (``torch.utils.flop_counter``: convolutions and matrix products, forward and
  backward, of one step): what the step costs if every operation ran as efficiently as the
  network's; the cached block steps of each block, the cached relaxed ``layer4`` search step
  (architecture pass plus weight pass), and the forward pass of the part before each block (what
  the uncached path adds per batch);
* the time ratio measured *interleaved* in one process (network step, then the configuration,
  ``--pairs`` times; median of the per-pair ratios), so that a drift of the machine's speed, which
  on this 2-core machine moves sequential runs by up to 30%, touches both sides alike.

The block-level Table 1 repair trains ``layer2`` (the block the failure gradients pick), so its
cached step's FLOP ratio is the floor of its time ratio before any set-up. From the ``layer4``
figures, the FLOP floor of a whole ArchRepair run cached against uncached (``--fit-rows``,
``--repair-rows``, ``--search-epochs``, ``--warmup-epochs``, ``--finetune-epochs``: by default the
whole-training-set run of ``cache_cost.py --train-examples 0 --search-epochs 3
--finetune-epochs 3``; the search's weight and architecture halves taken as half the fit rows
each): weight steps, architecture steps and fine-tuning steps each lose the prefix's forward
pass, and the cached run pays one prefix pass over every repair row to build the cache.
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import print_headline
from step_cost import BLOCKS, build_step

INTERLEAVED = [("block-cached", "layer2"), ("block-cached", "layer4"), ("relaxed-cached", "layer4")]


def flops(step) -> int:
    """FLOPs of one call of ``step`` (convolutions and matrix products, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def prefix_flops(block: str, width: float, batch: int) -> int:
    """FLOPs of the forward pass of the part of the network before ``block``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from archrepair._repair.block_split import split_at_block
    from archrepair.models import get_model

    model = get_model("resnet18", num_classes=10, width=width).eval()
    prefix = split_at_block(model, block).prefix(model)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        prefix(torch.randn(batch, 3, 32, 32))
    return counter.get_total_flops()


def interleaved_ratio(network, other, pairs: int) -> tuple[float, float, float]:
    """Median over ``pairs`` of (time of ``other()`` / time of the ``network()`` step just before it),
    and the median seconds of each; two warm-up calls each first."""
    for _ in range(2):
        network(), other()
    ratios, network_seconds, other_seconds = [], [], []
    for _ in range(pairs):
        started = time.perf_counter()
        network()
        middle = time.perf_counter()
        other()
        ended = time.perf_counter()
        network_seconds.append(middle - started)
        other_seconds.append(ended - middle)
        ratios.append((ended - middle) / (middle - started))
    return statistics.median(ratios), statistics.median(network_seconds), statistics.median(other_seconds)


def whole_run_floor(ratios: dict, args) -> tuple[float, float]:
    """FLOPs of a whole cached and uncached ArchRepair run on ``layer4``, in network steps."""
    half = -(-args.fit_rows // 2 // args.batch)
    weight_steps, architecture_steps = args.search_epochs * half, (args.search_epochs - args.warmup_epochs) * half
    finetune_steps = args.finetune_epochs * -(-args.fit_rows // args.batch)
    cache_batches = -(-args.repair_rows // args.batch)
    weight, architecture = ratios["relaxed_weights"], ratios["relaxed"] - ratios["relaxed_weights"]
    block, prefix = ratios["block"], ratios["prefix"]
    cached = weight_steps * weight + architecture_steps * architecture + finetune_steps * block + cache_batches * prefix
    uncached = (weight_steps * (weight + prefix) + architecture_steps * (architecture + prefix)
                + finetune_steps * (block + prefix))
    return cached, uncached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--fit-rows", type=int, default=46000)
    parser.add_argument("--repair-rows", type=int, default=51000)
    parser.add_argument("--search-epochs", type=int, default=3)
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    args = parser.parse_args()
    counts = (args.batch, args.pairs, args.fit_rows, args.repair_rows, args.search_epochs, args.finetune_epochs)
    if args.width <= 0 or min(counts) < 1 or not 0 <= args.warmup_epochs < args.search_epochs:
        parser.error("--width must be above 0, --batch, --pairs, the row counts and the epochs at least 1, and "
                     "--warmup-epochs from 0 to --search-epochs - 1")
    network, _ = build_step("network", None, args.width, args.batch, "cpu")
    network_flops = flops(network)
    print(f"network-level step: {network_flops / 1e9:.2f} GFLOP (batch {args.batch})")
    headline, block_ratio, prefix_ratio = {}, {}, {}
    print("block | cached block step FLOPs / network | prefix forward FLOPs / network")
    for block in BLOCKS:
        step, _ = build_step("block-cached", block, args.width, args.batch, "cpu")
        block_ratio[block] = flops(step) / network_flops
        prefix_ratio[block] = prefix_flops(block, args.width, args.batch) / network_flops
        print(f"{block} | {block_ratio[block]:.3f} | {prefix_ratio[block]:.3f}")
        headline[f"{block}_block_cached_flop_ratio"] = round(block_ratio[block], 3)
        headline[f"{block}_prefix_forward_flop_ratio"] = round(prefix_ratio[block], 3)
    relaxed, _ = build_step("relaxed-cached", "layer4", args.width, args.batch, "cpu")
    relaxed_ratio = flops(relaxed) / network_flops
    uncached = relaxed_ratio + 2 * prefix_ratio["layer4"]  # two batches per step
    print(f"relaxed layer4 search step, cached: {relaxed_ratio:.3f} of a network step's FLOPs "
          f"(uncached: {uncached:.3f}, ratio {relaxed_ratio / uncached:.2f})")
    headline["layer4_relaxed_cached_flop_ratio"] = round(relaxed_ratio, 3)
    headline["layer4_relaxed_cached_to_uncached_flop_ratio"] = round(relaxed_ratio / uncached, 3)
    weights_only, _ = build_step("relaxed-weights-cached", "layer4", args.width, args.batch, "cpu")
    cached_run, uncached_run = whole_run_floor(
        {"relaxed": relaxed_ratio, "relaxed_weights": flops(weights_only) / network_flops,
         "block": block_ratio["layer4"], "prefix": prefix_ratio["layer4"]}, args)
    print(f"whole run on layer4 ({args.fit_rows:,} fit rows, {args.search_epochs} search epochs with "
          f"{args.warmup_epochs} warm-up, {args.finetune_epochs} fine-tuning): cached {cached_run:,.0f}, uncached "
          f"{uncached_run:,.0f} network steps' FLOPs: ratio {cached_run / uncached_run:.2f}")
    headline["layer4_whole_run_flop_ratio"] = round(cached_run / uncached_run, 3)
    print(f"interleaved with a network step, {args.pairs} pairs each (median of per-pair ratios):")
    print("configuration | block | time ratio | network step ms | its step ms")
    for kind, block in INTERLEAVED:
        step, _ = build_step(kind, block, args.width, args.batch, "cpu")
        ratio, network_seconds, seconds = interleaved_ratio(network, step, args.pairs)
        print(f"{kind} | {block} | {ratio:.3f} | {1000 * network_seconds:.1f} | {1000 * seconds:.1f}", flush=True)
        headline[f"{block}_{kind.replace('-', '_')}_interleaved_time_ratio"] = round(ratio, 3)
    print_headline(headline)


if __name__ == "__main__":
    main()
