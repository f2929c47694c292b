"""Time to corrupt CIFAR-10 test images with all 15 corruptions at all 5 severities.

    python benchmarks/corruption_speed.py [--images 10000] [--workers N]

On the shared exact CIFAR-10 test images (1,000, tiled to the requested count). First the whole
job as ``archrepair corrupt`` runs it (one process per core; the headline figure), then each
corruption alone in this process, to show where the time goes.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from common import print_headline, shared_data_dir

from archrepair.data.corruptions import NAMES, corrupt, corrupt_many


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    clean = np.load(shared_data_dir() / "cifar10" / "cifar10-exact-subset.npz")["x_test"]
    images = np.resize(clean, (args.images, *clean.shape[1:]))
    jobs = [(name, severity) for name in NAMES for severity in range(1, 6)]

    started = time.perf_counter()
    for _ in corrupt_many(images, jobs, seed=0, workers=args.workers):
        pass
    parallel = time.perf_counter() - started
    print(f"all 75 sets in {args.workers} processes: {parallel:.1f} s", flush=True)

    seconds = {}
    for name in NAMES:
        tick = time.perf_counter()
        for severity in range(1, 6):
            corrupt(images, name, severity, seed=0)
        seconds[name] = round(time.perf_counter() - tick, 2)
        print(f"{name}: {seconds[name]:.1f} s (one process, 5 severities)", flush=True)
    serial = sum(seconds.values())
    slowest = max(seconds, key=seconds.get)
    print(f"{args.images} images x 15 corruptions x 5 severities: {parallel:.1f} s with {args.workers} processes, "
          f"{serial:.1f} s in one; slowest {slowest} ({seconds[slowest]:.1f} s)")
    print_headline({"images": args.images, "workers": args.workers, "total_seconds": round(parallel, 1),
                    "one_process_seconds": round(serial, 1), "slowest": slowest,
                    "slowest_seconds": seconds[slowest], "target_seconds": 120})


if __name__ == "__main__":
    main()
