"""Race or share queue? How ``auto`` spends its budget, compared on the design seeds of
``studies/auto-design.toml`` (never the acceptance seeds), on **validation figures only**.

    archrepair study run studies/auto-design.toml     # the rows (each auto version's own hashes)
    python benchmarks/auto_race.py [--rows studies/auto-design/runs.jsonl] [--queue 2] [--race 3]

``auto`` version 2 gave each candidate an equal share of the time left when it started (the share
queue); version 3 races them (one epoch each, the two best validated continue). For each (model,
scenario, seed) both ran, the table gives each version's best option by validation (what the keep rule
is offered first: its name and validation accuracy), the training seconds its candidates used, and
the difference race − queue in validation accuracy (points). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from common import ROOT, print_headline


def best_option(row: dict) -> tuple[str, float, float]:
    """``(option, validation accuracy, training seconds)`` of a stored auto row."""
    choice = row["figures"]["choice"]
    offered = choice["offered"][0]
    seconds = sum(c.get("seconds", 0.0) for c in choice["candidates"] if c["status"].startswith("ran"))
    return offered["option"], offered["val_accuracy"], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=str(ROOT / "studies" / "auto-design" / "runs.jsonl"))
    parser.add_argument("--queue", type=int, default=2, help="auto's version with the share queue (default 2)")
    parser.add_argument("--race", type=int, default=3, help="auto's version with the race (default 3)")
    args = parser.parse_args()
    path = Path(args.rows)
    if not path.is_file():
        parser.error(f"{path} does not exist; run `archrepair study run studies/auto-design.toml` first")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by_version: dict[int, dict[tuple, dict]] = {}
    for row in rows:
        if row["method"] == "auto" and row["status"] == "done" and (row["figures"] or {}).get("choice"):
            key = (row["model"], row["scenario"], row["seed"])
            by_version.setdefault(row["config"]["method_version"], {})[key] = row
    queue, race = by_version.get(args.queue, {}), by_version.get(args.race, {})
    pairs = sorted(set(queue) & set(race))
    print("cell | seed | queue: best option (validation %, training s) | race: best option (validation %, training s) "
          "| race − queue (points)")
    differences = []
    for key in pairs:
        (q_name, q_val, q_s), (r_name, r_val, r_s) = best_option(queue[key]), best_option(race[key])
        differences.append(100 * (r_val - q_val))
        print(f"{key[0]}, {key[1]} | {key[2]} | {q_name} ({100 * q_val:.2f}, {q_s:.0f}) | {r_name} ({100 * r_val:.2f}, "
              f"{r_s:.0f}) | {differences[-1]:+.2f}")
    if not pairs:
        print("no (model, scenario, seed) has rows of both versions yet")
    ahead = sum(d > 0 for d in differences)
    behind = sum(d < 0 for d in differences)
    if pairs:
        print(f"\n{len(pairs)} pairs: race ahead on {ahead}, behind on {behind}, mean {np.mean(differences):+.2f} "
              "points of validation accuracy")
    print_headline({"pairs": len(pairs), "race_ahead": ahead, "race_behind": behind,
                    "mean_validation_difference_points": round(float(np.mean(differences)), 3) if pairs else None})


if __name__ == "__main__":
    main()
