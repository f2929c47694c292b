"""The first run a newcomer makes, on several seeds: does ``archrepair demo`` keep a repaired model
whose hold-out gain has a 95% interval above 0, in under a minute on this machine?

    python benchmarks/demo_seeds.py [--seeds 0,1,2] [--scenario field]

Each seed runs ``archrepair demo --seed S --json`` in a fresh process (as a user would: its wall
seconds include starting Python and importing torch) into a temporary folder. Rows go to
``results/demo_seeds.jsonl`` (one per scenario and seed, replaced on a rerun). The last line is one
JSON object: per seed the kept model, the hold-out change and its interval (points), the home change
(field scenario) and the seconds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, code_commit, print_headline

STORE = ROOT / "benchmarks" / "results" / "demo_seeds.jsonl"


def demo_row(seed: int, scenario: str) -> dict:
    """One ``archrepair demo`` in a fresh process: its report's headline figures and wall seconds."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "archrepair", "demo", "--seed", str(seed), "--scenario", scenario,
                               "--out", str(Path(folder) / "demo"), "--json", "--quiet"],
                              capture_output=True, text=True, cwd=ROOT)
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"archrepair demo --seed {seed} failed: {done.stderr.strip().splitlines()[-1:]}")
    report = json.loads(done.stdout)
    returned = report["judged"]["returned"]
    held, home = returned["holdout"], returned.get("home")
    return {"scenario": scenario, "seed": seed, "kept": report["kept"], "chosen": report["details"].get("chosen"),
            "holdout_examples": held["examples"], "holdout_before": held["accuracy_before"],
            "holdout_after": held["accuracy_after"], "holdout_change_points": held["change_points"],
            "holdout_interval_points": held["change_interval_points"],
            "home_change_points": home["change_points"] if home else None,
            "home_negative_flip_rate": home["negative_flip_rate"] if home else None,
            "seconds": round(seconds, 1), "commit": code_commit()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--scenario", choices=("field", "test"), default="field")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    rows = [demo_row(seed, args.scenario) for seed in seeds]
    for row in rows:
        low, high = row["holdout_interval_points"]
        print(f"seed {row['seed']}: kept {row['kept']} ({row['chosen']}), hold-out {100 * row['holdout_before']:.2f}% -> "
              f"{100 * row['holdout_after']:.2f}% ({row['holdout_change_points']:+.2f} points [{low:+.2f}, {high:+.2f}]"
              f" on {row['holdout_examples']}), home {row['home_change_points']}, {row['seconds']} s")
    kept = [row for row in rows if row["kept"] == "repaired" and row["holdout_interval_points"][0] > 0]
    old = [json.loads(line) for line in STORE.read_text().splitlines()] if STORE.exists() else []
    fresh = {(row["scenario"], row["seed"]) for row in rows}
    from archrepair.fileio import write_text_atomically

    write_text_atomically(STORE, "".join(json.dumps(row) + "\n" for row in
                                         [row for row in old if (row["scenario"], row["seed"]) not in fresh] + rows))
    print_headline({"scenario": args.scenario, "seeds": seeds, "repaired_with_interval_above_zero": len(kept),
                    "max_seconds": max(row["seconds"] for row in rows),
                    "rows": [{key: row[key] for key in ("seed", "kept", "holdout_change_points",
                                                         "holdout_interval_points", "home_change_points", "seconds")}
                             for row in rows]})


if __name__ == "__main__":
    main()
