"""Failures from the field (#29): a model trained on MNIST, repaired from scikit-learn's digits.

    python benchmarks/field_digits.py --seeds 0,1,2,3,4,5,6,7 \
        --methods auto,archrepair,train-more-block,augmix,network-gradient

Two real sources of handwriting: the base model is a ``small_cnn`` trained on the shared MNIST
(``../shared/data/mnist/mnist.npz``, 28 px; trained once, committed under ``models/``),
the field set is scikit-learn's 1,797 digits (another collection, 8x8, brought to 28 px by the field
reader, bilinear). For each seed the field set is split (``--field``: fit part, validation part,
hold-out; the seed draws it) and each method runs on it with ``--budget-seconds`` of wall time. Each
finished run is a row of ``results/field_digits_rows.jsonl`` (resumed on a rerun). Prints per method
the field hold-out change, unseen field failures fixed, the home (MNIST test) change and negative
flips, seconds, and how often the keep rule kept the repair; one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from common import ROOT, code_commit, print_headline, relative_data_spec, shared_data_dir

STORE = ROOT / "benchmarks" / "results" / "field_digits_rows.jsonl"


MODELS = ROOT / "models"
FIELD_SET = ROOT / "studies" / "data" / "sklearn-digits.npz"


def base_model(epochs: int) -> str:
    """The MNIST model's checkpoint folder (``models/mnist-small_cnn-e<epochs>``, committed for 2
    epochs), trained here when missing (seed 0, resumable)."""
    import torch

    from archrepair.base_model import TrainJob, train_base_model
    from archrepair.data import load_data
    from archrepair.train import TrainConfig

    out = MODELS / f"mnist-small_cnn-e{epochs}"
    if not (out / "model.json").exists():
        data = load_data(f"npz:{shared_data_dir() / 'mnist' / 'mnist.npz'}")
        started = time.perf_counter()
        _, record, _ = train_base_model(data, TrainJob("small_cnn", 1.0, seed=0), TrainConfig(epochs=epochs, lr=0.05),
                                        out, torch.device("cpu"), resume=(out.parent / f"{out.name}.state.pt").exists(),
                                        on_epoch=lambda e: print(f"MNIST epoch {e.epoch + 1}: val {e.val_accuracy:.4f}",
                                                                 flush=True))
        relative_data_spec(out)
        print(f"trained {out.name}: test accuracy {record.metrics['test_accuracy']:.4f} in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
    return str(out)


def field_set() -> str:
    """scikit-learn's digits as a field npz (``x`` 8x8 uint8, ``y``; committed as
    ``studies/data/sklearn-digits.npz``), written when missing."""
    path = FIELD_SET
    if not path.exists():
        from sklearn.datasets import load_digits

        digits = load_digits()
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, x=np.round(digits.images * (255.0 / 16.0)).astype(np.uint8), y=digits.target.astype(np.int64))
    return str(path)


def run(checkpoint: str, field: str, seed: int, method: str, args: argparse.Namespace) -> dict:
    from archrepair import Budget, RepairPlan, TaskConfig
    from archrepair.plan import prepare, run_plan

    plan = RepairPlan(checkpoint, method, budget=Budget(seconds=args.budget_seconds), field=field, count=args.count,
                      task=TaskConfig(train_examples=args.train_examples, seed=seed, device="cpu"))
    prepared = prepare(plan)
    split = prepared.split
    started = time.perf_counter()
    _, report = run_plan(prepared)
    returned, candidate = report["judged"]["returned"], report["judged"]["candidate"]
    return {"seed": seed, "method": method, "budget_seconds": args.budget_seconds, "count": args.count,
            "train_examples": args.train_examples, "kept": report["kept"], "keep_p": report["keep"]["p_value"],
            "field_failures": len(split.fail_indices), "field_holdout": len(split.holdout_indices),
            "field_change": returned["holdout"]["change_points"],
            "field_interval": returned["holdout"]["change_interval_points"],
            "field_unseen_fixed": returned["holdout"]["unseen_fix_rate"],
            "field_negative_flips": returned["holdout"]["negative_flip_rate"],
            "home_change": returned["home"]["change_points"], "home_negative_flips": returned["home"]["negative_flip_rate"],
            "candidate_field_change": candidate["holdout"]["change_points"],
            "candidate_home_change": candidate["home"]["change_points"],
            "candidate_home_negative_flips": candidate["home"]["negative_flip_rate"],
            "seconds": round(time.perf_counter() - started, 1), "commit": code_commit()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2,3,4,5,6,7")
    parser.add_argument("--methods", default="auto,archrepair,train-more-block,augmix,network-gradient")
    parser.add_argument("--budget-seconds", type=float, default=60.0, help="wall-clock seconds per run (default 60)")
    parser.add_argument("--count", type=int, default=1000, help="failures asked for (the fit part's, at most)")
    parser.add_argument("--train-examples", type=int, default=5000, help="MNIST training examples in D_repair")
    parser.add_argument("--base-epochs", type=int, default=2, help="epochs of the MNIST model (default 2)")
    parser.add_argument("--out", default=str(STORE))
    args = parser.parse_args()
    from archrepair._repair.registry import list_repairers

    unknown = [m for m in args.methods.split(",") if m not in list_repairers()]
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(list_repairers())}")
    if not all(s.strip().isdigit() for s in args.seeds.split(",")):
        parser.error(f"--seeds takes whole numbers separated by commas, got {args.seeds!r}")
    store = Path(args.out)
    rows = read_rows(store, parser)
    checkpoint, field = base_model(args.base_epochs), field_set()

    def key(row: dict) -> tuple:
        return row["seed"], row["method"], row["budget_seconds"], row["count"], row["train_examples"]

    for seed in [int(s) for s in args.seeds.split(",")]:
        for method in args.methods.split(","):
            wanted = (seed, method, args.budget_seconds, args.count, args.train_examples)
            if any(key(row) == wanted for row in rows):
                continue
            row = run(checkpoint, field, seed, method, args)
            rows.append(row)
            with open(store, "a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(f"seed {seed} {method}: field hold-out {row['field_change']:+.2f} pts, home {row['home_change']:+.2f} "
                  f"pts (negative flips {100 * row['home_negative_flips']:.2f}%), kept {row['kept']}, "
                  f"{row['seconds']:.0f} s", flush=True)
    report(rows, args)


def read_rows(store: Path, parser: argparse.ArgumentParser) -> list[dict]:
    """The rows of an earlier run in ``--out`` (resumed and appended to); a file that is not this
    benchmark's rows is refused in one line, untouched."""
    if not store.exists():
        return []
    if store.is_dir():
        parser.error(f"--out {store} is a folder; give the rows file (.jsonl) to write or resume")
    try:
        rows = [json.loads(line) for line in store.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (json.JSONDecodeError, UnicodeDecodeError):
        rows = None
    if rows is None or not all(isinstance(row, dict) and {"seed", "method", "field_change"} <= set(row) for row in rows):
        parser.error(f"--out {store} exists and is not this benchmark's rows; choose another file (it is left as it is)")
    return rows


def report(rows: list[dict], args: argparse.Namespace) -> None:
    from scipy.stats import wilcoxon

    seeds = [int(s) for s in args.seeds.split(",")]
    chosen = {m: [r for r in rows if r["method"] == m and r["seed"] in seeds and r["budget_seconds"] == args.budget_seconds
                  and r["count"] == args.count and r["train_examples"] == args.train_examples]
              for m in args.methods.split(",")}
    print("\nmethod | runs | field hold-out change | unseen field failures fixed % | home change | home negative flips % "
          "| candidate field change | candidate home change | kept | seconds")
    headline = {}
    for method, got in chosen.items():
        if not got:
            continue
        mean = {k: float(np.mean([r[k] for r in got])) for k in ("field_change", "field_unseen_fixed", "home_change",
                                                                   "home_negative_flips", "candidate_field_change",
                                                                   "candidate_home_change", "seconds")}
        sd = float(np.std([r["field_change"] for r in got], ddof=1)) if len(got) > 1 else 0.0
        kept = sum(r["kept"] == "repaired" for r in got)
        print(f"{method} | {len(got)} | {mean['field_change']:+.2f} ± {sd:.2f} | {100 * mean['field_unseen_fixed']:.1f} | "
              f"{mean['home_change']:+.2f} | {100 * mean['home_negative_flips']:.2f} | {mean['candidate_field_change']:+.2f} "
              f"| {mean['candidate_home_change']:+.2f} | {kept}/{len(got)} | {mean['seconds']:.0f}")
        headline |= {f"{method}_field_change": round(mean["field_change"], 2), f"{method}_home_change": round(mean["home_change"], 2),
                     f"{method}_kept": f"{kept}/{len(got)}"}
    if chosen.get("auto"):
        for other, got in chosen.items():
            pairs = {r["seed"]: r["field_change"] for r in got}
            common = [r for r in chosen["auto"] if r["seed"] in pairs]
            if other == "auto" or len(common) < 2:
                continue
            differences = [r["field_change"] - pairs[r["seed"]] for r in common]
            p = float(wilcoxon(differences).pvalue) if any(differences) else 1.0
            print(f"auto - {other} (field hold-out, returned): mean {np.mean(differences):+.2f} over {len(common)} seeds, "
                  f"Wilcoxon p {p:.3g}")
            headline[f"auto_minus_{other}_field"] = round(float(np.mean(differences)), 2)
    print_headline(headline)


if __name__ == "__main__":
    main()
