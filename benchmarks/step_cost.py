"""Cost of one training step of the relaxed model against one step of network-level fine-tuning.

    python benchmarks/step_cost.py [--width 0.25] [--batch 64] [--steps 5]

ResNet-18 (CIFAR variant, 10 classes, 32x32 inputs) at the given width. For each of its four
blocks, the block is replaced by the relaxed block ArchRepair searches (default search space) and
one search step is timed through the functions the search itself runs
(``archrepair._search.optimise.architecture_step`` and ``weight_step``): an architecture step
(Adam; the block's weights frozen for that pass, so no weight gradients are computed) plus a weight
step of the block (SGD), the rest of the network frozen. Beside it the same step with the
architecture pass computing the weight gradients too (as before this change). Beside it, in the same run, one step of training every weight of the
original network (network-level fine-tuning) and one weight step of the original block alone
(block-level gradient repair). Each configuration runs in a fresh process; time is the median of
``--steps`` steps after one warm-up step; memory is the rise of the process's peak resident set
over the first and the timed steps above its peak before them (the model, the batch and, for the
relaxed block, its construction), or the peak allocated CUDA memory (GPU).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import time

from common import print_headline

BLOCKS = ["layer1", "layer2", "layer3", "layer4"]


def build_step(kind: str, block: str | None, width: float, batch: int, device: str):
    """One configuration's training step on a random batch, as ``(step, weights)``: ``step()`` runs
    it, ``weights`` are the parameters it trains. ``kind``: ``network`` (every weight), ``block``
    (the block's weights, the rest frozen), ``relaxed`` (an architecture step then a weight step of
    the relaxed block), ``relaxed-weights`` (the weight step alone, as in the search's warm-up),
    ``relaxed-plain`` (the architecture pass computing weight gradients too);
    ``-cached`` on ``block`` or ``relaxed``: on the cached inputs of the block (the repair's path)."""
    import torch
    from torch import nn

    from archrepair.models import get_block, get_model, replace_block
    from archrepair._search.surgery import block_input, trainable_only
    from archrepair._search import RelaxedBlock, SearchConfig, SearchSpace, block_graph
    from archrepair._search.optimise import architecture_step, weight_step
    from archrepair._repair.block_inputs import PackedSuffix, pack
    from archrepair._repair.block_split import split_at_block

    torch.manual_seed(0)
    torch.set_num_threads(torch.get_num_threads())
    model = get_model("resnet18", num_classes=10, width=width).to(device)
    images = torch.randn(batch, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    criterion = nn.CrossEntropyLoss()
    arch_opt = None
    if kind == "network":
        model.train()
        weights = list(model.parameters())
    elif kind.startswith("block"):
        set_mode = trainable_only(model, get_block(model, block))
        set_mode(model)
        weights = [p for p in model.parameters() if p.requires_grad]
    else:
        model.eval()
        graph = block_graph(get_block(model, block), block_input(model, block, images[:8]))
        relaxed = RelaxedBlock(graph, SearchSpace()).to(device)
        replace_block(model, block, relaxed)
        trainable_only(model, relaxed)(model)
        weights = [p for p in relaxed.weight_parameters() if p.requires_grad]
        arch_opt = torch.optim.Adam(relaxed.architecture_parameters(), lr=0.03, betas=(0.5, 0.999))
    weight_opt = torch.optim.SGD(weights, lr=0.01, momentum=0.9)
    if kind.endswith("-cached"):  # the repair's cached path: the block and what follows, on its inputs
        with torch.no_grad():
            cut = split_at_block(model, block)
            frontier = cut.prefix(model)(images)
        model = PackedSuffix(cut.suffix(model), [tuple(value.shape[1:]) for value in frontier], False)
        images = pack(frontier)

    config = SearchConfig(beta_decay=0.0)

    def step() -> None:
        if kind.startswith("relaxed") and kind != "relaxed-plain":
            if not kind.startswith("relaxed-weights"):
                architecture_step(model, relaxed, images, labels, arch_opt, config)
            weight_step(model, images, labels, weights, weight_opt, 0.01, config)
        else:
            if arch_opt is not None:  # relaxed-plain: the architecture pass computes weight gradients too
                arch_opt.zero_grad(set_to_none=True)
                criterion(model(images), labels).backward()
                arch_opt.step()
            weight_opt.zero_grad(set_to_none=True)
            criterion(model(images), labels).backward()
            weight_opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return step, weights


def measure(kind: str, block: str | None, width: float, batch: int, steps: int, device: str,
            profile: bool = False) -> dict:
    """Run in a child process: build the configuration, time ``steps`` steps, report time and memory
    (and with ``profile``, the operators taking the most self time over ``steps`` more steps)."""
    import torch

    step, weights = build_step(kind, block, width, batch, device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()  # warm-up: allocates the optimiser state and the autograd buffers, counted in the memory
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    if device.startswith("cuda"):
        memory_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        memory_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    measured = {"kind": kind, "block": block, "seconds": statistics.median(times), "memory_mb": memory_mb,
                "trainable": sum(p.numel() for p in weights)}
    if profile:
        from torch.profiler import ProfilerActivity, profile as profiler

        with profiler(activities=[ProfilerActivity.CPU]) as recorded:
            for _ in range(steps):
                step()
        averages = sorted(recorded.key_averages(), key=lambda event: event.self_cpu_time_total, reverse=True)
        total = sum(event.self_cpu_time_total for event in averages)
        measured["profile"] = [{"op": event.key, "share": round(event.self_cpu_time_total / total, 3),
                                "ms_per_step": round(event.self_cpu_time_total / 1000 / steps, 2)}
                               for event in averages[:10]]
    return measured


def run_isolated(*args) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    network = run_isolated("network", None, args.width, args.batch, args.steps, args.device)
    print(f"network-level step: {1000 * network['seconds']:.1f} ms, peak memory rise {network['memory_mb']:.0f} MB, "
          f"{network['trainable']:,} trainable weights")
    print("block | relaxed step ms | ratio to network | cached | ratio | relaxed memory MB | ratio | "
          "before (arch pass with weight gradients) ms | ratio | block-only step ms | ratio | cached | ratio | "
          "searched weights")
    headline = {"network_step_ms": round(1000 * network["seconds"], 1)}
    for block in BLOCKS:
        relaxed = run_isolated("relaxed", block, args.width, args.batch, args.steps, args.device)
        cached = run_isolated("relaxed-cached", block, args.width, args.batch, args.steps, args.device,
                              block == "layer4")
        before = run_isolated("relaxed-plain", block, args.width, args.batch, args.steps, args.device)
        plain = run_isolated("block", block, args.width, args.batch, args.steps, args.device)
        plain_cached = run_isolated("block-cached", block, args.width, args.batch, args.steps, args.device)
        ratio = {name: measured["seconds"] / network["seconds"] for name, measured in
                 [("relaxed", relaxed), ("cached", cached), ("before", before), ("block", plain),
                  ("block_cached", plain_cached)]}
        memory_ratio = relaxed["memory_mb"] / max(network["memory_mb"], 1e-9)
        print(f"{block} | {1000 * relaxed['seconds']:.1f} | {ratio['relaxed']:.2f} | {1000 * cached['seconds']:.1f} | "
              f"{ratio['cached']:.2f} | {relaxed['memory_mb']:.0f} | {memory_ratio:.2f} | "
              f"{1000 * before['seconds']:.1f} | {ratio['before']:.2f} | {1000 * plain['seconds']:.1f} | "
              f"{ratio['block']:.2f} | {1000 * plain_cached['seconds']:.1f} | {ratio['block_cached']:.2f} | "
              f"{relaxed['trainable']:,}", flush=True)
        headline[f"{block}_time_ratio"] = round(ratio["relaxed"], 2)
        headline[f"{block}_relaxed_cached_ratio"] = round(ratio["cached"], 2)
        headline[f"{block}_memory_ratio"] = round(memory_ratio, 2)
        headline[f"{block}_time_ratio_weight_grads_in_arch_pass"] = round(ratio["before"], 2)
        headline[f"{block}_block_time_ratio"] = round(ratio["block"], 2)
        headline[f"{block}_block_cached_ratio"] = round(ratio["block_cached"], 2)
        if "profile" in cached:
            print(f"profile of the cached relaxed step on {block} (self CPU time, top operators):")
            for row in cached["profile"]:
                print(f"  {row['op']:<40} {row['ms_per_step']:>8.2f} ms/step  {100 * row['share']:5.1f}%")
            headline[f"{block}_relaxed_cached_profile"] = cached["profile"][:6]
    print_headline(headline)


if __name__ == "__main__":
    main()
