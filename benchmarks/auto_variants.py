"""Two settings of ``auto`` side by side on the design seeds of ``studies/auto-design.toml`` (never the
acceptance seeds): each (cell, seed) is the study's own run (same plan, budget, threads), repaired
once per variant, and the table reads **validation figures only** (each candidate's validation
accuracy, and on a field set its field and home parts) plus the keep rows' counts of the options
offered (rows that never enter a reported hold-out).

    python benchmarks/auto_variants.py --cells mnist:field-digits,resnet18-undertrained:test \\
        --seeds 100,101,102,103 --variants v8=anneal:0,balance_field:0 v9=

A variant is ``NAME=KEY:VALUE,...`` over :class:`~archrepair._repair.methods.auto.AutoConfig`'s
boolean fields and ``share.CANDIDATE`` (a candidate's share weight; ``NAME=`` alone: the defaults). Rows go to ``results/auto_variants.jsonl``, appended
as each finishes, so an interrupted run resumes. The last line is one JSON object: per variant, the
mean validation accuracy of the option offered first and of every candidate.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
from common import ROOT, code_commit, print_headline

STORE = ROOT / "benchmarks" / "results" / "auto_variants.jsonl"
STUDY = ROOT / "studies" / "auto-design.toml"


def parse_variant(text: str) -> tuple[str, dict[str, bool | float]]:
    """``NAME=KEY:VALUE,...`` as ``(name, {key: value})``: a boolean of ``AutoConfig`` (0/1), or
    ``share.CANDIDATE``: that candidate's share weight (a number) in every scenario's list."""
    name, _, rest = text.partition("=")
    changes: dict[str, bool | float] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition(":")
        changes[key] = float(value) if key.startswith("share.") else value not in ("0", "false", "no")
    return name, changes


def changed_config(config, changes: dict[str, bool | float]):
    """``config`` (an ``AutoConfig``) with ``changes`` (see :func:`parse_variant`)."""
    weights = {key.removeprefix("share."): value for key, value in changes.items() if key.startswith("share.")}
    flags = {key: value for key, value in changes.items() if not key.startswith("share.")}

    def weighted(specs):
        return tuple(replace(spec, share_weight=weights.get(spec.name, spec.share_weight)) for spec in specs)

    return replace(config, failures=weighted(config.failures), shift=weighted(config.shift),
                   field_set=weighted(config.field_set), **flags)


def study_configs(cells: list[tuple[str, str]], seeds: list[int]) -> dict[tuple[str, str, int], dict]:
    """The resolved run configuration of ``auto`` for each (model, scenario, seed) asked for."""
    from archrepair.study.spec import load_study, resolve_runs

    runs = resolve_runs(load_study(STUDY))
    found = {(run.model, run.scenario, run.seed): run.config for run in runs if run.method == "auto"}
    wanted = {(model, scenario, seed) for model, scenario in cells for seed in seeds}
    missing = wanted - found.keys()
    if missing:
        raise SystemExit(f"{STUDY.name} has no auto run for {sorted(missing)[0]}")
    return {key: found[key] for key in sorted(wanted)}


def repair_once(config: dict, changes: dict[str, bool | float]) -> dict:
    """One repair of the study run ``config`` with ``auto``'s settings changed by ``changes``."""
    import torch

    from archrepair.plan import prepare, run_plan
    from archrepair.study.execute import plan_of_row

    torch.set_num_threads(config["threads"])
    prepared = prepare(plan_of_row(config), log=lambda line: None)
    prepared.repairer.config = changed_config(prepared.repairer.config, changes)
    from archrepair._comparison.record import choice_record

    result, report = run_plan(prepared, estimate=False)
    return {"choice": choice_record(report["details"]), "keep": report.get("keep"),
            "seconds": round(sum(result.phase_seconds.values()), 2)}


def summary(rows: list[dict]) -> dict:
    """Per variant: the first offered option's validation accuracy and each candidate's, averaged."""
    out = {}
    for name in sorted({row["variant"] for row in rows}):
        mine = [row for row in rows if row["variant"] == name]
        first = [row["choice"]["offered"][0]["val_accuracy"] for row in mine if row["choice"]["offered"]]
        candidates: dict[str, list[float]] = {}
        for row in mine:
            for record in row["choice"]["candidates"] or []:
                if record.get("status") == "ran":
                    candidates.setdefault(record["name"], []).append(record["val_accuracy"])
        out[name] = {"rows": len(mine), "first_offered_val": round(float(np.mean(first)), 4) if first else None,
                     "candidates_val": {key: round(float(np.mean(values)), 4) for key, values in candidates.items()}}
    return out


def print_table(rows: list[dict]) -> None:
    for row in rows:
        print(f"== {row['variant']} {row['model']} {row['scenario']} seed {row['seed']}")
        for record in row["choice"]["candidates"] or []:
            if record.get("status") != "ran":
                print(f"   {record['name']:22s} {record.get('status')}")
                continue
            parts = f" field {record['val_field_accuracy']:.4f} home {record['val_home_accuracy']:.4f}" \
                if record.get("val_field_accuracy") is not None else ""
            print(f"   {record['name']:22s} {record.get('seconds', 0):6.1f} s  epochs {record.get('epochs_run')}  "
                  f"val {record['val_accuracy']:.4f}{parts}")
        for test in (row["keep"] or {}).get("tests", []):
            print(f"   keep {test['option']:28s} +{test['candidate_only_right']} -{test['original_only_right']} "
                  f"p {test['p_value']:.3g} {'PASS' if test['passed'] else 'fail'}{' <=' if test.get('chosen') else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", default="mnist:field-digits", help="MODEL:SCENARIO,... of studies/auto-design.toml")
    parser.add_argument("--seeds", default="100,101,102,103")
    parser.add_argument("--variants", nargs="+", default=["v8=anneal:0,balance_field:0", "v9="])
    parser.add_argument("--report-only", action="store_true", help="print the stored rows, run nothing")
    args = parser.parse_args()
    cells = [tuple(cell.split(":", 1)) for cell in args.cells.split(",")]
    seeds = [int(seed) for seed in args.seeds.split(",")]
    variants = dict(parse_variant(text) for text in args.variants)
    stored = [json.loads(line) for line in STORE.read_text().splitlines()] if STORE.exists() else []
    done = {(row["variant"], row["model"], row["scenario"], row["seed"]) for row in stored}
    if not args.report_only:
        for (model, scenario, seed), config in study_configs(cells, seeds).items():
            for name, changes in variants.items():
                if (name, model, scenario, seed) in done:
                    continue
                row = {"variant": name, "changes": changes, "model": model, "scenario": scenario, "seed": seed,
                       "commit": code_commit()} | repair_once(config, changes)
                with STORE.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                stored.append(row)
                print(f"{name} {model} {scenario} seed {seed}: first offered "
                      f"{row['choice']['offered'][0]['option'] if row['choice']['offered'] else None}", flush=True)
    rows = [row for row in stored if row["variant"] in variants and (row["model"], row["scenario"]) in cells
            and row["seed"] in seeds]
    print_table(rows)
    print_headline(summary(rows))


if __name__ == "__main__":
    main()
