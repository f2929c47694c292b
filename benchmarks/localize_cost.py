"""Cost of a localisation against one plain forward and backward pass over the same examples.

ResNet-18 (width 0.25, converged checkpoint) on the shared CIFAR-10: 1,000 failures + 1,000
training examples. Both are timed in the same process, same batch size, same thread count. Peak
memory (resident set, measured in a fresh subprocess per size) is shown for two sizes of D_repair
to check that it does not grow with the number of examples.

    python benchmarks/localize_cost.py                 # --device cuda on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import cifar10_spec, load_cached_model, print_headline

from archrepair.base_model import make_loader
from archrepair.data import BatchLoader, load_data, select_failures
from archrepair.device import resolve_device
from archrepair.errors import ArchRepairError
from archrepair.data.repair_set import repair_set
from archrepair.evaluate import predict_logits
from archrepair._localize import localize


def build(name: str, failures: int, train_examples: int, batch_size: int, device: str):
    model, record = load_cached_model(name)
    model = model.to(device)
    data = load_data(cifar10_spec())
    predictions = predict_logits(model, make_loader(data, "test", record, device=device)).argmax(1).numpy()
    split = select_failures(predictions, data.y_test, failures, 0, protocol="paper")
    repair = repair_set(data, split, train_examples, 0)
    loader = BatchLoader(repair.x, repair.y, record.mean, record.std, batch_size=batch_size, device=device)
    return model, record, loader


def _synchronised(seconds_of):
    """``seconds_of(...)`` with the device's queued work finished before the clock is read."""
    def timed(model, *rest) -> float:
        device = next(model.parameters()).device
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        seconds_of(model, *rest)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - started
    return timed


@_synchronised
def plain_pass(model, loader) -> None:
    """One forward and backward pass (parameter gradients, as training computes) over ``loader``."""
    model.eval()
    for images, labels in loader:
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), labels).backward()


@_synchronised
def timed_localize(model, record, loader) -> None:
    height, width, channels = record.input_shape
    localize(model, loader, (channels, height, width), progress=False)


def worker(name: str, failures: int, train_examples: int, batch_size: int, device: str) -> None:
    """Peak resident memory during one localisation: the high-water mark is reset first (Linux
    clear_refs), so data loading before it does not count; the resident data arrays still do."""
    model, record, loader = build(name, failures, train_examples, batch_size, device)
    resident = _status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    timed_localize(model, record, loader)
    print(json.dumps({"examples": loader.num_examples, "rss_before_mb": resident, "peak_rss_mb": _status_mb("VmHWM")}))


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"{field} not in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model-name", default="resnet18-w0.25-converged", help="cached checkpoint to use")
    parser.add_argument("--worker", nargs=2, type=int, metavar=("FAILURES", "TRAIN"))
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args()
    try:
        resolve_device(args.device)
    except ArchRepairError as error:
        parser.error(str(error))
    if args.worker:
        worker(args.model_name, *args.worker, args.batch_size, args.device)
        return
    model, record, loader = build(args.model_name, 1000, 1000, args.batch_size, args.device)
    plain_pass(model, loader)  # warm-up
    plain, local = [], []
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
        plain.append(plain_pass(model, loader))
        local.append(timed_localize(model, record, loader))
    ratio = min(local) / min(plain)
    print(f"{loader.num_examples} examples, batch {args.batch_size}, {torch.get_num_threads()} threads")
    print(f"plain forward+backward: {[round(t, 2) for t in plain]} s; localisation: {[round(t, 2) for t in local]} s")
    memory = []
    for failures, train in ((250, 250), (1000, 1000)):
        out = subprocess.run([sys.executable, __file__, "--worker", str(failures), str(train), "--model-name",
                              args.model_name, "--batch-size", str(args.batch_size), "--device", args.device],
                             capture_output=True, text=True, check=True)
        memory.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"memory: {memory[-1]}")
    print_headline({
        "device": args.device, "examples": loader.num_examples, "plain_seconds": round(min(plain), 2), "localize_seconds": round(min(local), 2),
        "time_ratio": round(ratio, 3), "peak_rss_mb_small": memory[0]["peak_rss_mb"],
        "peak_rss_mb_large": memory[1]["peak_rss_mb"], "examples_small": memory[0]["examples"],
    })


if __name__ == "__main__":
    main()
