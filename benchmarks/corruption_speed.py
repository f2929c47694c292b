"""Time to corrupt CIFAR-10 test images with all 15 corruptions at all 5 severities.

    python benchmarks/corruption_speed.py [--images 10000]

Prints the seconds per corruption (all severities) and the total, on the shared exact CIFAR-10
images (the 1,000 exact test images, tiled to the requested count).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import print_headline, shared_data_dir

from archrepair.data.corruptions import NAMES, corrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10000)
    args = parser.parse_args()
    clean = np.load(shared_data_dir() / "cifar10" / "cifar10-exact-subset.npz")["x_test"]
    images = np.resize(clean, (args.images, *clean.shape[1:]))
    seconds = {}
    started = time.perf_counter()
    for name in NAMES:
        tick = time.perf_counter()
        for severity in range(1, 6):
            corrupt(images, name, severity, seed=0)
        seconds[name] = round(time.perf_counter() - tick, 2)
        print(f"{name}: {seconds[name]:.1f} s", flush=True)
    total = time.perf_counter() - started
    slowest = max(seconds, key=seconds.get)
    print(f"total {total:.1f} s for {args.images} images x 15 corruptions x 5 severities; slowest {slowest}")
    print_headline({"images": args.images, "total_seconds": round(total, 1), "slowest": slowest,
                    "slowest_seconds": seconds[slowest], "target_seconds": 120})


if __name__ == "__main__":
    main()
