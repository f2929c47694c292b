"""How ``auto``'s candidates were chosen (#27): every candidate of a wider list, each to its own
schedule (no time budget), on design seeds that the acceptance runs never use; **validation figures
only** (accuracy and loss on the task's validation rows, seconds, epochs), so that the choice of
defaults never looks at a hold-out.

    python benchmarks/auto_design.py [--models undertrained] [--seeds 100,101,102] [--scenario failures]
        [--corruption gaussian_noise --severity 3] [--report-only]
    python benchmarks/auto_design.py --choice [--budget-seconds 120]

Rows go to ``results/auto_design.jsonl`` (one per model, seed, scenario), appended as each finishes,
so an interrupted run resumes. The table: per candidate, validation accuracy (mean over seeds), how
often it is the best by validation, seconds and epochs.

``--choice`` (scenario ``choice``): the default candidates as ``auto`` runs them (one time budget),
each also interpolated towards the original (α 0.25, 0.5, 0.75), with the validation negative flip
rate of every option; the table replays the choice under each flip weight λ (score: validation
accuracy − λ · validation negative flips) with and without the interpolated options, and gives the
chosen option's validation accuracy and negative flips beside ``train-more-block``'s.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from common import BASE_MODELS, ROOT, code_commit, prepared, print_headline

STORE = ROOT / "benchmarks" / "results" / "auto_design.jsonl"


def design_candidates(scenario: str):
    """The wider list the defaults were chosen from."""
    from archrepair._repair.methods.auto import CandidateSpec as C

    if scenario == "shift":
        return (C("augmix", "augmix"), C("augmix+distill1", "augmix", retain_weight=1.0),
                C("augmix-w2", "augmix", fail_weight=2.0))
    return (C("train-more-block", "train-more-block"),
            C("block-gradient", "block-gradient"),
            C("block-gradient+distill3", "block-gradient", retain_weight=3.0),
            C("block-gradient-w0.5", "block-gradient", fail_weight=0.5),
            C("block-gradient-w2", "block-gradient", fail_weight=2.0),
            C("block-gradient-w0", "block-gradient", fail_weight=0.0),
            C("archrepair+distill10", "archrepair", retain_weight=10.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="undertrained")
    parser.add_argument("--seeds", default="100,101,102")
    parser.add_argument("--count", type=int, default=750)
    parser.add_argument("--train-examples", type=int, default=5000)
    parser.add_argument("--corruption")
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--choice", action="store_true",
                        help="the default candidates in one budget, with interpolated options and flip weights")
    parser.add_argument("--budget-seconds", type=float, default=120.0, help="the budget of a --choice run")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    scenario = "choice" if args.choice else "shift" if args.corruption else "failures"
    stored = [json.loads(line) for line in STORE.read_text().splitlines()] if STORE.exists() else []
    have = {(r["model"], r["seed"], r["scenario"]) for r in stored}
    seeds = [int(s) for s in args.seeds.split(",")]
    for seed in seeds:
        for kind in args.models.split(","):
            if (kind, seed, scenario) in have or args.report_only:
                continue
            stored.append(run_one(kind, seed, scenario, args))
            with STORE.open("a") as handle:
                handle.write(json.dumps(stored[-1]) + "\n")
    mine = [r for r in stored if r["scenario"] == scenario and r["seed"] in seeds and r["model"] in args.models.split(",")]
    print_headline(choice_report(mine) if args.choice else report(mine))


def run_one(kind: str, seed: int, scenario: str, args: argparse.Namespace) -> dict:
    from archrepair._repair import RepairSettings
    from archrepair.budget import Budget
    from archrepair._repair.methods.auto import FAILURE_CANDIDATES, AutoConfig, AutoRepair
    from archrepair._repair.retain import RetainConfig

    shift = {"name": args.corruption, "severity": args.severity, "seed": 0} if args.corruption else None
    task = prepared(BASE_MODELS[kind], args.count, seed, "heldout", train_examples=args.train_examples,
                    corruption=shift).task()
    specs = FAILURE_CANDIDATES if scenario == "choice" else design_candidates(scenario)
    # localisation on D_fail and up to 5,000 other rows, as the held-out bench's rows ran
    settings = RepairSettings(retain=RetainConfig("none", 0.0), localize_rows=5000)
    config = AutoConfig(failures=specs, shift=specs, settings=settings, mixes=MIXES if scenario == "choice" else ())
    method = AutoRepair(config, log=lambda message: print(message, flush=True) if message.startswith("auto:") else None)
    if scenario == "choice":
        method.apply_budget(Budget(seconds=args.budget_seconds))
    candidate = method.train(task, method.budget.deadline())
    records = candidate.details["candidates"]
    return {"model": kind, "seed": seed, "scenario": scenario, "corruption": args.corruption, "severity": args.severity,
            "candidates": records, "localization_seconds": candidate.phase_seconds.get("localize"),
            "commit": code_commit()}


MIXES = (0.25, 0.5, 0.75)
FLIP_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 3.0)


def choice_report(rows: list[dict]) -> dict:
    """Replay ``auto``'s choice on the stored validation figures under each flip weight, with and
    without the interpolated options: the chosen option, its validation accuracy and negative flips."""
    figures = {}
    for kind in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == kind]
        print(f"\n{kind}, {len(mine)} seeds ({', '.join(str(r['seed']) for r in mine)}): validation only, "
              "accuracy and negative flips in %")
        for r in mine:
            for c in r["candidates"]:
                if c["status"] == "ran":
                    options = ", ".join(f"α {m['alpha']:g} {100 * m['val_accuracy']:.1f}/{100 * m['val_negative_flip_rate']:.1f}"
                                        for m in c.get("mixes", []))
                    print(f"  seed {r['seed']} {c['name']}: {100 * c['val_accuracy']:.1f}/"
                          f"{100 * c['val_negative_flip_rate']:.1f} ({c['seconds']:.0f} s){'; ' + options if options else ''}")
        safety = [next(c for c in r["candidates"] if c["name"] == "train-more-block") for r in mine]
        print(f"train-more-block alone: accuracy {100 * np.mean([c['val_accuracy'] for c in safety]):.2f}, "
              f"negative flips {100 * np.mean([c['val_negative_flip_rate'] for c in safety]):.2f}")
        print("flip weight | interpolated options | chosen (per seed) | accuracy | negative flips")
        for mixes in (False, True):
            for weight in FLIP_WEIGHTS:
                chosen = [replay_choice(r["candidates"], weight, mixes) for r in mine]
                accuracy = 100 * np.mean([c[1]["val_accuracy"] for c in chosen])
                flips = 100 * np.mean([c[1]["val_negative_flip_rate"] for c in chosen])
                print(f"{weight:g} | {'yes' if mixes else 'no'} | {', '.join(c[0] for c in chosen)} | "
                      f"{accuracy:.2f} | {flips:.2f}")
                key = f"{kind}_flip{weight:g}{'_mixes' if mixes else ''}"
                figures[f"{key}_val_accuracy"], figures[f"{key}_val_negative_flips"] = round(accuracy, 2), round(flips, 2)
    return figures


def replay_choice(candidates: list[dict], weight: float, mixes: bool) -> tuple[str, dict]:
    """The option ``auto`` chooses from the recorded ``candidates`` at flip weight ``weight``."""
    options = []
    for c in candidates:
        if c["status"] != "ran":
            continue
        options.append((c["name"], c))
        options += [(f"{c['name']}×{m['alpha']:g}", m) for m in c.get("mixes", []) if mixes]
    return max(options, key=lambda o: (o[1]["val_accuracy"] - weight * o[1]["val_negative_flip_rate"],
                                       -o[1]["val_loss"]))


def report(rows: list[dict]) -> dict:
    """Per candidate: mean validation accuracy, times best by validation, mean seconds and epochs."""
    figures = {}
    for kind in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == kind]
        names = list(dict.fromkeys(c["name"] for r in mine for c in r["candidates"]))
        print(f"\n{kind}, {len(mine)} seeds ({', '.join(str(r['seed']) for r in mine)}): validation only")
        print("candidate | val accuracy % (mean ± sd) | val loss | best by validation | seconds | epochs")
        best = [max(r["candidates"], key=lambda c: (c["val_accuracy"], -c["val_loss"]))["name"] for r in mine]
        for name in names:
            runs = [c for r in mine for c in r["candidates"] if c["name"] == name]
            accuracy = 100 * np.array([c["val_accuracy"] for c in runs])
            epochs = {}
            for c in runs:
                for phase, count in c["epochs"].items():
                    epochs.setdefault(phase, []).append(count)
            print(f"{name} | {accuracy.mean():.2f} ± {accuracy.std(ddof=1) if len(runs) > 1 else 0:.2f} | "
                  f"{np.mean([c['val_loss'] for c in runs]):.4f} | {best.count(name)}/{len(mine)} | "
                  f"{np.mean([c['seconds'] for c in runs]):.0f} | "
                  + ", ".join(f"{p} {np.mean(v):.1f}" for p, v in epochs.items()))
            figures[f"{kind}_{name}_val_accuracy"] = round(float(accuracy.mean()), 2)
    return figures


if __name__ == "__main__":
    main()
