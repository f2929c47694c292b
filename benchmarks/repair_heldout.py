"""Repairs judged under the held-out protocol, every method on the same wall-clock budget (#14).

    python benchmarks/repair_heldout.py [--models undertrained,converged] [--seeds 0,1,2,3,4,5]
        [--budget-seconds 60] [--count 750] [--train-examples 5000]

For each shared ResNet-18 w0.25 model and seed: the seed's held-out split (``--count`` failures
from the failure pool, the same count for both models so that rows compare), ``D_repair`` with
``--train-examples`` training examples, and every method of ``--methods`` with ``--budget-seconds``
of wall time (epochs as many as fit; early stopping on). ``NAME+distill`` is NAME with
``--retain distill`` at the λ of ``--retain-grid`` whose candidate validates best (chosen by
validation, never by the hold-out). Each finished run is appended to ``--out`` (JSON lines) and
skipped when the benchmark is run again, so an interrupted run resumes. Prints one table per model
(mean ± sd over seeds of the returned model's and the candidate's figures) and one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from common import ROOT, cifar10_spec, load_cached_model, print_headline

from archrepair.base_model import make_loader
from archrepair.budget import Budget
from archrepair.data import load_data, select_failures
from archrepair.evaluate import predict_logits
from archrepair._repair import RepairSettings, TaskConfig, get_repairer, make_task
from archrepair._repair.pipeline import run_repair
from archrepair._repair.retain import RetainConfig

MODELS = {"undertrained": "resnet18-w0.25-deployed80", "converged": "resnet18-w0.25-converged"}
METHODS = ("archrepair,archrepair-fixed-arch,block-gradient,network-gradient,train-more-block,train-more-network,"
           "archrepair+distill,network-gradient+distill")


def run_method(name: str, task, budget: float, grid: list[float]) -> dict:
    """One method's report; ``+distill``: the grid's λ with the best candidate validation accuracy."""
    base, _, retain = name.partition("+")
    weights = grid if retain else [0.0]
    best = None
    for weight in weights:
        settings = RepairSettings(retain=RetainConfig("distill" if retain else "none", weight))
        _, report = run_repair(get_repairer(base, settings, Budget(seconds=budget)), task)
        report["retain_weight"] = weight
        if best is None or report["val_accuracy_repaired"] > best["val_accuracy_repaired"]:
            best = report
    return best


def row_of(kind: str, seed: int, name: str, report: dict) -> dict:
    histories = [key for key in ("search", "finetune", "history") if key in report["details"]]
    return {"model": kind, "seed": seed, "method": name, "kept": report["kept"], "judged": report["judged"],
            "seconds": sum(report["phase_seconds"].values()), "retain_weight": report.get("retain_weight"),
            "epochs": {key: len(report["details"][key]) for key in histories}, "block": report.get("block")}


def table(rows: list[dict], kind: str) -> dict:
    """Print the model's table; returns headline figures."""
    figures = {}
    print(f"\n{kind}: mean ± sd over seeds; hold-out change in points, flips and fixes in %")
    print("method | runs | change | mean interval | negative flips | unseen fixed | D_fail fixed | paper's figure | "
          "candidate change | candidate negative flips | seconds")
    for method in dict.fromkeys(row["method"] for row in rows):
        mine = [row for row in rows if row["method"] == method]

        def stat(whose, key, scale=1.0):
            values = np.array([scale * (row["judged"][whose]["holdout"][key] if key in
                                        row["judged"][whose]["holdout"] else row["judged"][whose][key]) for row in mine])
            return values.mean(), values.std(ddof=1) if len(values) > 1 else 0.0

        change, interval = stat("returned", "change_points"), np.mean([r["judged"]["returned"]["holdout"]
                                                                        ["change_interval_points"] for r in mine], 0)
        flips, unseen = stat("returned", "negative_flip_rate", 100), stat("returned", "unseen_fix_rate", 100)
        fixed = np.mean([100 * r["judged"]["returned"]["fail_fixed_rate"] for r in mine])
        paper = np.mean([r["judged"]["returned"]["paper_change_points"] for r in mine])
        candidate, candidate_flips = stat("candidate", "change_points"), stat("candidate", "negative_flip_rate", 100)
        seconds = np.mean([r["seconds"] for r in mine])
        print(f"{method} | {len(mine)} | {change[0]:+.2f} ± {change[1]:.2f} | [{interval[0]:+.2f}, {interval[1]:+.2f}] | "
              f"{flips[0]:.2f} | {unseen[0]:.1f} | {fixed:.1f} | {paper:+.2f} | {candidate[0]:+.2f} ± {candidate[1]:.2f} | "
              f"{candidate_flips[0]:.2f} | {seconds:.0f}")
        figures[f"{kind}_{method}_candidate_change_points"] = round(float(candidate[0]), 2)
        figures[f"{kind}_{method}_candidate_negative_flip_percent"] = round(float(candidate_flips[0]), 2)
    return figures


def wait_while(pause_file: str | None) -> None:
    """Sleep while ``pause_file`` exists (saying so once)."""
    if pause_file and Path(pause_file).exists():
        print(f"paused while {pause_file} exists", flush=True)
        while Path(pause_file).exists():
            time.sleep(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="undertrained,converged")
    parser.add_argument("--seeds", default="0,1,2,3,4,5")
    parser.add_argument("--methods", default=METHODS)
    parser.add_argument("--budget-seconds", type=float, default=60.0)
    parser.add_argument("--count", type=int, default=750)
    parser.add_argument("--train-examples", type=int, default=5000)
    parser.add_argument("--retain-grid", default="0.3,1,3")
    parser.add_argument("--pause-file", help="between runs, wait while this file exists (so that other work can use "
                                             "the CPU without sharing it with a timed run)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "repair_heldout.jsonl"))
    args = parser.parse_args()
    out, grid = Path(args.out), [float(value) for value in args.retain_grid.split(",")]
    done = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    finished = {(row["model"], row["seed"], row["method"]) for row in done}
    data = load_data(cifar10_spec())
    headline = {}
    for kind in args.models.split(","):
        model, record = load_cached_model(MODELS[kind])
        predictions = predict_logits(model, make_loader(data, "test", record)).argmax(1).numpy()
        for seed in (int(value) for value in args.seeds.split(",")):
            split = select_failures(predictions, data.y_test, args.count, seed)
            task = make_task(model, record, data, split, TaskConfig(args.train_examples or None, seed=seed))
            for name in args.methods.split(","):
                if (kind, seed, name) in finished:
                    continue
                wait_while(args.pause_file)
                row = row_of(kind, seed, name, run_method(name, task, args.budget_seconds, grid))
                with out.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                done.append(row)
                held = row["judged"]["candidate"]["holdout"]
                print(f"{kind} seed {seed} {name}: candidate {held['change_points']:+.2f} "
                      f"{held['change_interval_points']}, negative flips {100 * held['negative_flip_rate']:.2f}%, "
                      f"kept {row['kept']}, {row['seconds']:.0f} s", flush=True)
        headline |= table([row for row in done if row["model"] == kind], kind)
    print_headline(headline)


if __name__ == "__main__":
    main()
