"""Wall time of one repair in one process and spread over two (torchrun, gloo), side by side.

The shared under-trained ResNet-18 (width 0.25) on the shared CIFAR-10, ArchRepair with fixed epochs
(no time budget; the fine-tuning's patience of 3 epochs cannot stop 2), 5,000 training rows and 500 failures; each process has one
thread, so the two runs use one and two cores, and one process with two threads runs beside them
(the same two cores, not spread). Each run's report gives the split by phase; the decoded data is
cached before any is timed. On a 2-core machine this is no measure of speed-up over devices: it
shows the overhead of spreading (collectives every step; localisation, failure finding and the
block-input cache done whole in every process) against what the second core buys.

    python benchmarks/ddp_scaling.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import BASE_MODELS, cifar10_spec, code_commit, model_path, print_headline

from archrepair.data import load_data


def repair_command(out: Path, processes: int, args: argparse.Namespace) -> list[str]:
    repair = ["-m", "archrepair", "repair", str(model_path(BASE_MODELS["undertrained"])), "--data", cifar10_spec(),
              "--method", "archrepair", "--train-examples", str(args.rows), "--count", str(args.failures),
              "--search-epochs", str(args.search_epochs), "--warmup-epochs", "1",
              "--finetune-epochs", str(args.finetune_epochs), "--out", str(out), "--quiet", "--json"]
    if processes == 1:
        return [sys.executable, *repair]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", *repair]


def timed_repair(out: Path, processes: int, threads: int, args: argparse.Namespace) -> dict:
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    done = subprocess.run(repair_command(out, processes, args), capture_output=True, text=True, env=environment)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"the {processes}-process repair failed:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    held = report["judged"]["returned"]["holdout"]
    return {"processes": processes, "threads": threads, "wall_seconds": round(seconds, 1), "report_seconds": report["total_seconds"],
            "phase_seconds": report["phase_seconds"], "kept": report["kept"], "block": report["block"],
            "holdout_change_points": held["change_points"],
            "weights": [edge["weights"][op] for edge in (report["genotype"] or {"alphas": []})["alphas"]
                        for op in sorted(edge["weights"])]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5000, help="training rows of D_repair")
    parser.add_argument("--failures", type=int, default=500)
    parser.add_argument("--search-epochs", type=int, default=2)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    args = parser.parse_args()
    for option in ("rows", "failures", "search_epochs", "finetune_epochs"):
        if getattr(args, option) < (2 if option == "search_epochs" else 1):
            parser.error(f"--{option.replace('_', '-')} must be at least {2 if option == 'search_epochs' else 1}")
    load_data(cifar10_spec())  # decoded and cached before anything is timed
    with tempfile.TemporaryDirectory() as folder:
        runs = [timed_repair(Path(folder) / f"p{processes}t{threads}", processes, threads, args)
                for processes, threads in ((1, 1), (2, 1), (1, 2))]
    one, two, threaded = runs
    for run in runs:
        phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in run["phase_seconds"].items())
        print(f"{run['processes']} process(es) x {run['threads']} thread(s): {run['wall_seconds']:.1f} s wall ({phases}); block "
              f"{run['block']}, kept {run['kept']}, hold-out {run['holdout_change_points']:+.2f} points")
    drift = float(np.abs(np.array(one["weights"]) - np.array(two["weights"])).max()) if one["weights"] else None
    print(f"{os.cpu_count()} cores; two processes take {two['wall_seconds'] / one['wall_seconds']:.2f}x the wall time of "
          f"one process of one thread and {two['wall_seconds'] / threaded['wall_seconds']:.2f}x that of one process of two "
          "threads (on 2 cores: no measure of speed-up over devices)")
    print_headline({
        "commit": code_commit(), "cores": os.cpu_count(), "rows": args.rows, "failures": args.failures,
        "search_epochs": args.search_epochs, "finetune_epochs": args.finetune_epochs,
        "one_process_seconds": one["wall_seconds"], "two_process_seconds": two["wall_seconds"],
        "one_process_two_threads_seconds": threaded["wall_seconds"],
        "two_over_one": round(two["wall_seconds"] / one["wall_seconds"], 3),
        "two_over_one_threaded": round(two["wall_seconds"] / threaded["wall_seconds"], 3),
        "phases_one": one["phase_seconds"], "phases_two": two["phase_seconds"],
        "phases_one_threaded": threaded["phase_seconds"], "kept": [run["kept"] for run in runs],
        "holdout_change_points": [run["holdout_change_points"] for run in runs],
        "architecture_weight_difference": None if drift is None else round(drift, 4),
    })


if __name__ == "__main__":
    main()
