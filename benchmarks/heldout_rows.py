"""Repair runs under the held-out protocol, shared by the benchmarks that compare methods on the
shared ResNet-18 w0.25 models (``repair_heldout.py``, ``baselines_neuron.py``).

One store of JSON lines (``results/heldout_rows.jsonl``): a row per (model, seed, method, settings),
appended as soon as the run finishes, so that an interrupted benchmark resumes and two benchmarks
that need the same run share it. For each model and seed: the seed's held-out split (``--count``
failures from the failure pool, the same count for both models so that rows compare), ``D_repair``
with ``--train-examples`` training examples, and each method with ``--budget-seconds`` of wall time
(epochs as many as fit; early stopping on). ``NAME+distill`` is NAME with ``--retain distill`` at the
λ of ``--retain-grid`` whose candidate validates best (chosen by validation, never by the hold-out).
Seeds run in the outer loop, so every model has its first seeds early.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from common import ROOT, cifar10_spec, code_commit, load_cached_model

MODELS = {"undertrained": "resnet18-w0.25-deployed80", "converged": "resnet18-w0.25-converged"}
STORE = ROOT / "benchmarks" / "results" / "heldout_rows.jsonl"


def add_arguments(parser: argparse.ArgumentParser, methods: str, seeds: str) -> None:
    parser.add_argument("--models", default="undertrained,converged")
    parser.add_argument("--seeds", default=seeds)
    parser.add_argument("--methods", default=methods)
    parser.add_argument("--budget-seconds", type=float, default=120.0,
                        help="wall-clock seconds per method run (default 120: ArchRepair's default schedule, 6 search "
                             "and up to 8 fine-tuning epochs on 5,000 rows, fits in it on 2 cores; at 60 it reached 5 "
                             "search epochs and 1 fine-tuning epoch)")
    parser.add_argument("--count", type=int, default=750)
    parser.add_argument("--train-examples", type=int, default=5000)
    parser.add_argument("--retain-grid", default="0.3,1,3")
    parser.add_argument("--corruption", help="the robustness scenario: D_fail from this corruption of the test set "
                                             "(Table 7); rows then hold accuracy on the hold-out's images clean and "
                                             "under all 15 corruptions")
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--others-sample", type=int, default=2000,
                        help="hold-out images the 14 other corruptions are evaluated on (the target and clean: all)")
    parser.add_argument("--pause-file", help="between runs, wait while this file exists (so that other work can use "
                                             "the CPU without sharing it with a timed run)")
    parser.add_argument("--keep-level", type=float, default=0.05,
                        help="the keep rule's level (#27: one-sided McNemar on the keep rows; recorded in each row)")
    parser.add_argument("--old-rows", action="store_true",
                        help="report the rows stored before the keep rule (the final choice by validation accuracy); "
                             "runs nothing")
    parser.add_argument("--out", default=str(STORE), type=_rows_file,
                        help="the JSON-lines store of rows, read and appended to (not a report: the report is stdout)")
    parser.add_argument("--report-only", action="store_true", help="print the tables from the stored rows; run nothing")


def _rows_file(value: str) -> str:
    if not value.endswith(".jsonl"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a .jsonl rows store (the report goes to stdout)")
    return value


def settings_of(args: argparse.Namespace) -> dict:
    """What makes two runs of a method comparable (recorded with every row)."""
    settings = {"budget_seconds": args.budget_seconds, "count": args.count, "train_examples": args.train_examples,
                "retain_grid": args.retain_grid}
    if getattr(args, "corruption", None):
        settings |= {"corruption": args.corruption, "severity": args.severity, "others_sample": args.others_sample}
    if not getattr(args, "old_rows", False):  # rows from before the keep rule (#27) have no level
        settings["keep_level"] = args.keep_level
    return settings


def ensure_rows(args: argparse.Namespace, variants: dict[str, dict] | None = None) -> list[dict]:
    """Every row ``args`` asks for: from the store, or run now (and appended to it). A method named
    ``NAME@VARIANT`` runs NAME with the setting overrides ``variants[VARIANT]`` (:func:`run_method`),
    recorded in its row; ``train_examples`` among them builds its own task."""
    from archrepair.base_model import make_loader
    from archrepair.data import load_data, select_failures
    from archrepair.evaluate import predict_logits
    from archrepair._repair import TaskConfig, make_task

    out, settings = Path(args.out), settings_of(args)
    stored = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    variants = variants or {}

    def overrides(method: str) -> dict | None:
        return variants[method.partition("@")[2]] if "@" in method else None

    configurations: dict[str, str] = {}

    def configuration(method: str) -> str:
        if method not in configurations:
            configurations[method] = configuration_of(method, overrides(method))
        return configurations[method]

    def comparable(row: dict) -> bool:  # same settings; a known variant, same overrides; today's defaults
        known = "@" not in row["method"] or row["method"].partition("@")[2] in variants
        return (row.get("settings") == settings and known and row.get("variant") == overrides(row["method"])
                and row.get("configuration") == configuration(row["method"]))

    stored = [row for row in stored if comparable(row)]
    kinds, seeds, methods = args.models.split(","), [int(s) for s in args.seeds.split(",")], args.methods.split(",")
    wanted = {(kind, seed, method) for kind in kinds for seed in seeds for method in methods}
    have = {(row["model"], row["seed"], row["method"]) for row in stored}
    data, loaded, shifted = None, {}, None
    for seed in seeds:
        for kind in kinds:
            missing = [method for method in methods if (kind, seed, method) not in have]
            if not missing or args.report_only or args.old_rows:
                continue
            if data is None:
                data = load_data(cifar10_spec())
                if args.corruption:
                    shifted = ShiftedTest(data, args.corruption, args.severity)
                    data = shifted.target
            if kind not in loaded:
                model, record = load_cached_model(MODELS[kind])
                predictions = predict_logits(model, make_loader(data, "test", record)).argmax(1).numpy()
                loaded[kind] = model, record, predictions
            model, record, predictions = loaded[kind]
            split = select_failures(predictions, data.y_test, args.count, seed)
            shift = {"name": args.corruption, "severity": args.severity, "seed": 0} if args.corruption else None
            tasks = {}
            for method in missing:
                changes = overrides(method) or {}
                examples = changes.get("train_examples", args.train_examples)
                if examples not in tasks:
                    tasks[examples] = make_task(model, record, data, split, TaskConfig(
                        examples or None, seed=seed, corruption=shift, keep_level=args.keep_level))
                task = tasks[examples]
                wait_while(args.pause_file)
                result, report = run_method(method, task, args, changes)
                row = row_of(kind, seed, method, report, settings) | {"variant": overrides(method),
                                                                      "configuration": configuration(method),
                                                                      "commit": code_commit()}
                if result.block is not None and result.genotype is not None:
                    row |= search_record(task, result, report)
                if shifted is not None:
                    started = time.perf_counter()
                    row["shift_table"] = shifted.table(model, result, record, split, args.others_sample, seed)
                    row["shift_table_seconds"] = time.perf_counter() - started
                with out.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                stored.append(row)
                held = row["judged"]["candidate"]["holdout"]
                print(f"{kind} seed {seed} {method}: candidate {held['change_points']:+.2f} "
                      f"{held['change_interval_points']}, negative flips {100 * held['negative_flip_rate']:.2f}%, "
                      f"kept {row['kept']}, {row['seconds']:.0f} s", flush=True)
    return [row for row in stored if (row["model"], row["seed"], row["method"]) in wanted]


SPACE_FIELDS = ("original_logit", "partial_channels", "edge_normalisation")
SEARCH_FIELDS = ("epochs", "warmup_epochs", "arch_lr", "beta_decay", "failures_in_architecture_split")


def rows_and_tables(args: argparse.Namespace, variants: dict[str, dict] | None = None) -> tuple[list[dict], dict]:
    """:func:`ensure_rows`, then each model's table (:func:`method_table`); the rows and the headline figures."""
    rows, headline = ensure_rows(args, variants), {}
    for kind in args.models.split(","):
        headline |= method_table(rows, kind)
    return rows, headline


def method_settings(name: str, changes: dict | None = None, weight: float = 0.0):
    """The :class:`RepairSettings` that ``name`` (``NAME[+distill][@VARIANT]``) runs with, at retain
    weight ``weight``. ``changes``: overrides of the search space (``SPACE_FIELDS``), the search
    (``SEARCH_FIELDS``) and ``rule``."""
    from dataclasses import replace

    from archrepair._repair import RepairSettings
    from archrepair._repair.retain import RetainConfig

    changes, distill = changes or {}, "+distill" in name
    # localisation on D_fail and up to 5,000 other rows (every fit row here), as every stored row ran
    # before the library's default became 1,000
    settings = RepairSettings(retain=RetainConfig("distill" if distill else "none", weight), localize_rows=5000)
    return replace(settings, space=replace(settings.space, **{k: v for k, v in changes.items() if k in SPACE_FIELDS}),
                   search=replace(settings.search, **{k: v for k, v in changes.items() if k in SEARCH_FIELDS}),
                   rule=changes.get("rule", settings.rule))


def configuration_of(name: str, changes: dict | None = None) -> str:
    """A short fingerprint of the configuration ``name`` runs with (the method's defaults with the
    variant's overrides, before its budget sets its epochs): stored with each row, so that a row run
    under other defaults is not reused after a default changes."""
    import hashlib
    from dataclasses import asdict, is_dataclass

    from archrepair._repair import get_repairer
    from archrepair.fileio import json_ready

    config = getattr(get_repairer(name.partition("@")[0].partition("+")[0], method_settings(name, changes)), "config", None)
    text = json.dumps(json_ready(asdict(config)) if is_dataclass(config) else None, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def run_method(name: str, task, args: argparse.Namespace, changes: dict | None = None):
    """One method's result and report; ``+distill``: the grid's λ with the best candidate validation
    accuracy. ``changes``: see :func:`method_settings`; ``train_examples`` is the task's (see
    :func:`ensure_rows`)."""
    from archrepair.budget import Budget
    from archrepair._repair import get_repairer
    from archrepair._repair.pipeline import run_repair

    base, _, retain = name.partition("@")[0].partition("+")
    weights = [float(value) for value in args.retain_grid.split(",")] if retain else [0.0]
    best = None
    for weight in weights:
        settings = method_settings(name, changes, weight)
        result, report = run_repair(get_repairer(base, settings, Budget(seconds=args.budget_seconds)), task)
        report["retain_weight"] = weight
        if best is None or report["val_accuracy_repaired"] > best[1]["val_accuracy_repaired"]:
            best = result, report
    return best


def search_record(task, result, report: dict) -> dict:
    """What a block-level repair's search found: the candidate's genotype, whether it differs from
    the original block (an edge whose operation is not ``original``, or an original edge dropped), the
    architecture weights per search epoch, and the block's parameters and latency, original against
    candidate."""
    from archrepair.models import get_block
    from archrepair._repair.outcome import architecture_changed, latency_figures, parameter_count
    from archrepair._search.surgery import block_input

    genotype = report["genotype"]
    example = task.example()
    changed = architecture_changed(task.model, result.block, genotype, example)
    trajectory = [epoch.get("weights", []) for epoch in report["details"].get("search", [])]
    blocks = {"original": get_block(task.model, result.block), "candidate": get_block(result.candidate, result.block)}
    latency = latency_figures(blocks["original"], blocks["candidate"], block_input(task.model, result.block, example),
                              changed)
    return {"genotype": genotype, "genotype_changed": changed, "search_weights": trajectory,
            "block_parameters": {k: parameter_count(b) for k, b in blocks.items()},
            "block_latency_ms": {"original": latency["latency_ms_before"], "candidate": latency["latency_ms_after"]}}


def row_of(kind: str, seed: int, name: str, report: dict, settings: dict) -> dict:
    details = report["details"]
    histories = [key for key in ("search", "finetune", "history") if key in details]
    return {"model": kind, "seed": seed, "method": name, "settings": settings, "kept": report["kept"],
            "val_accuracy_original": report["val_accuracy_original"], "val_accuracy_repaired": report["val_accuracy_repaired"],
            "judged": report["judged"], "seconds": sum(report["phase_seconds"].values()),
            "retain_weight": report.get("retain_weight"), "block": report.get("block"),
            "epochs": {key: len(details[key]) for key in histories}, "image_passes": details.get("image_passes"),
            "keep": report.get("keep"), "candidates": details.get("candidates"), "chosen": details.get("chosen")}


def figure(row: dict, whose: str, key: str) -> float:
    """A figure of ``whose`` (``returned`` or ``candidate``) model: on the test hold-out, else overall."""
    judged = row["judged"][whose]
    return judged["holdout"][key] if key in judged["holdout"] else judged[key]


def method_table(rows: list[dict], kind: str) -> dict:
    """Print the model's table (mean ± sd over seeds); returns the candidates' headline figures."""
    figures = {}
    print(f"\n{kind}: mean ± sd over seeds; hold-out change in points, flips and fixes in %")
    print("method | runs | change | mean interval | negative flips | unseen fixed | D_fail fixed | paper's figure | "
          "candidate change | candidate negative flips | candidate D_fail fixed | seconds | image passes | epochs reached")
    for method in dict.fromkeys(row["method"] for row in rows if row["model"] == kind):
        mine = [row for row in rows if row["model"] == kind and row["method"] == method]

        def stat(whose, key, scale=1.0):
            values = np.array([scale * figure(row, whose, key) for row in mine])
            return values.mean(), values.std(ddof=1) if len(values) > 1 else 0.0

        change = stat("returned", "change_points")
        interval = np.mean([figure(row, "returned", "change_interval_points") for row in mine], 0)
        flips, unseen = stat("returned", "negative_flip_rate", 100), stat("returned", "unseen_fix_rate", 100)
        fixed, paper = stat("returned", "fail_fixed_rate", 100), stat("returned", "paper_change_points")
        candidate, candidate_flips = stat("candidate", "change_points"), stat("candidate", "negative_flip_rate", 100)
        candidate_fixed = stat("candidate", "fail_fixed_rate", 100)
        seconds = np.mean([row["seconds"] for row in mine])
        passes = [row["image_passes"] for row in mine if row.get("image_passes") is not None]
        passes_text = f"{np.mean(passes):.1f}" if passes else "-"
        print(f"{method} | {len(mine)} | {change[0]:+.2f} ± {change[1]:.2f} | [{interval[0]:+.2f}, {interval[1]:+.2f}] | "
              f"{flips[0]:.2f} | {unseen[0]:.1f} | {fixed[0]:.1f} | {paper[0]:+.2f} | {candidate[0]:+.2f} ± "
              f"{candidate[1]:.2f} | {candidate_flips[0]:.2f} | {candidate_fixed[0]:.1f} | {seconds:.0f} | {passes_text} | "
              f"{epochs_reached(mine)}")
        figures[f"{kind}_{method}_candidate_change_points"] = round(float(candidate[0]), 2)
        figures[f"{kind}_{method}_candidate_negative_flip_percent"] = round(float(candidate_flips[0]), 2)
    return figures


def epochs_reached(rows: list[dict]) -> str:
    """The mean epochs per phase over ``rows`` (``row["epochs"]``: phase -> epochs trained; a method's
    single training history is named ``history``), e.g. ``search 6.0, finetune 4.8``; ``-`` when none."""
    phases = list(dict.fromkeys(phase for row in rows for phase in row.get("epochs") or {}))
    if not phases:
        return "-"
    means = {phase: np.mean([(row.get("epochs") or {}).get(phase, 0) for row in rows]) for phase in phases}
    return ", ".join(f"{means[p]:.1f}" if p == "history" else f"{p} {means[p]:.1f}" for p in phases)


def paired(rows: list[dict], reference: str, other: str, whose: str = "returned",
           key: str = "change_points") -> tuple[np.ndarray, list[tuple[str, int]]]:
    """``reference`` minus ``other`` on ``key`` per (model, seed) both have, and those pairs."""
    by = {(row["model"], row["seed"], row["method"]): row for row in rows}
    pairs = sorted({(m, s) for m, s, name in by if name == reference} & {(m, s) for m, s, name in by if name == other})
    return np.array([figure(by[(*p, reference)], whose, key) - figure(by[(*p, other)], whose, key) for p in pairs]), pairs


def wilcoxon_p(differences: np.ndarray) -> float | None:
    """The exact two-sided Wilcoxon signed-rank p of ``differences`` (``None`` below 2 pairs or all zero)."""
    from scipy.stats import wilcoxon

    if len(differences) < 2 or not np.any(differences):
        return None
    return float(wilcoxon(differences, method="exact").pvalue)


def paired_summary(rows: list[dict], other: str, whose: str = "returned", key: str = "change_points",
                   reference: str = "archrepair") -> dict:
    """``reference`` minus ``other`` (:func:`paired`): the per-pair differences, their mean and sd,
    how often ``reference`` is better, and the exact Wilcoxon p; empty without pairs."""
    values, pairs = paired(rows, reference, other, whose, key)
    if not len(pairs):
        return {}
    return {"per_pair": [round(float(v), 2) for v in values], "mean": round(float(values.mean()), 2),
            "sd": round(float(values.std(ddof=1)), 2) if len(values) > 1 else 0.0,
            "better_in": f"{int((values > 0).sum())}/{len(values)}", "p": wilcoxon_p(values)}


def against_archrepair(rows: list[dict], methods: list[str], paper: dict, whose: str = "returned",
                       key: str = "change_points") -> dict:
    """Print ArchRepair minus each of ``methods`` (``whose`` models' hold-out ``key``, paired over
    (model, seed)) beside the paper's delta; returns the means and p-values as headline figures."""
    figures = {}
    print("method | pairs | mean difference (points) | ArchRepair better in | Wilcoxon p | paper's delta")
    for other in methods:
        summary = {} if other == "archrepair" else paired_summary(rows, other, whose, key)
        if not summary:
            continue
        p = summary["p"]
        print(f"{other} | {len(summary['per_pair'])} | {summary['mean']:+.2f} ± {summary['sd']:.2f} | "
              f"{summary['better_in']} | {p if p is None else round(p, 4)} | "
              f"{'-' if other not in paper else f'{paper[other]:+.2f}'}")
        figures[f"{whose}_archrepair_minus_{other}_points"] = summary["mean"]
        figures[f"{whose}_archrepair_vs_{other}_wilcoxon_p"] = p
    return figures


class ShiftedTest:
    """The robustness scenario's test images: ``target`` (the data with its test split under the
    corruption) and, for the Table 7 row, the test split clean and under all 15 corruptions at the
    same severity (generated once, seed 0)."""

    def __init__(self, clean, name: str, severity: int) -> None:
        from archrepair.data.corrupted import corrupted_test
        from archrepair.data.corruptions import NAMES, corrupt_many

        self.clean, self.name = clean, name
        self.target = corrupted_test(clean, name, severity)
        self.sets = {"clean": clean.x_test} | {n: images for (n, _), images in
                                               corrupt_many(clean.x_test, [(n, severity) for n in NAMES], seed=0)}

    def table(self, original, result, record, split, others_sample: int, seed: int) -> dict:
        """Accuracy (%) of the original, returned and candidate models on the hold-out's images,
        clean and under each corruption (the 14 others on a seeded sample of ``others_sample``)."""
        from dataclasses import replace

        from archrepair.base_model import make_loader
        from archrepair.evaluate import predict_logits

        held = np.asarray(split.holdout_indices)
        sample = np.sort(np.random.default_rng(seed).choice(held, min(others_sample, len(held)), replace=False))
        table = {}
        for name, images in self.sets.items():
            rows = held if name in ("clean", self.name) else sample
            loader = make_loader(replace(self.clean, x_test=images, _fingerprint=None), "test", record, indices=rows)
            labels = self.clean.y_test[rows]
            table[name] = {who: round(100 * float((predict_logits(model, loader).argmax(1).numpy() == labels).mean()), 2)
                           for who, model in (("original", original), ("returned", result.model),
                                              ("candidate", result.candidate))}
        return table


def wait_while(pause_file: str | None) -> None:
    """Sleep while ``pause_file`` exists (saying so once)."""
    if pause_file and Path(pause_file).exists():
        print(f"paused while {pause_file} exists", flush=True)
        while Path(pause_file).exists():
            time.sleep(2)
