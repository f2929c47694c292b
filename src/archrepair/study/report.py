"""A study's report, regenerated from its store alone and byte-identical for the same store:
``report.md`` (the answers in numbers, then the tables), ``runs.csv`` (one line per run),
``changes.png`` (the returned hold-out change per method, one panel per model and scenario), ``cells.png``
(every cell side by side, one bar per method at the current settings) and, for
corruption scenarios, ``corruptions.png`` (accuracy under each corruption; the paper's Fig. 6).
The paper's tables are in :mod:`~archrepair.study.paper_tables`.

Figures are on the test hold-out of the ``heldout`` protocol (the field hold-out for a field
scenario) in percentage points: *returned*, the model the keep rule handed back; *candidate*, the
repaired model whichever won. Rows imported from before the store (``imported``) are counted and
said to be so.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fileio import write_bytes_atomically, write_text_atomically
from .store import STATUSES, Store, StoredRun
from .paper_tables import (PAPER_TABLE6, answers, block_layer_section, corruption_groups, corruption_section,
                           levels_section, localisation_section, mean_sd, paper_table5_line, search_section,
                           wilcoxon_text)
from .default_method import choices_section, default_section
from .variants import variant_labels

CSV_COLUMNS = ("model", "scenario", "method", "seed", "status", "hash", "holdout_change_points",
               "holdout_negative_flip_rate", "holdout_unseen_fix_rate", "candidate_holdout_change_points",
               "candidate_holdout_negative_flip_rate", "kept", "keep_p", "home_change_points", "seconds",
               "code_version", "error")


@dataclass(frozen=True)
class MethodFigures:
    """One method's finished runs in one (model, scenario) group, in seed order."""

    method: str
    runs: list[StoredRun]

    def values(self, figure: str) -> np.ndarray:
        return np.array([run.figures[figure] for run in self.runs if run.figures.get(figure) is not None], dtype=float)

    def mean_sd(self, figure: str, scale: float = 1.0) -> str:
        return mean_sd(self.values(figure) * scale)

    def mean(self, figure: str, scale: float = 1.0) -> str:
        values = self.values(figure) * scale
        return f"{values.mean():.2f}" if len(values) else "—"

    def kept(self) -> str:
        new = sum(run.figures.get("kept") == "repaired" for run in self.runs)
        old = sum((run.figures.get("keep") or {}).get("decision_old_rule", run.figures.get("kept")) == "repaired"
                  for run in self.runs)
        return f"{new}/{len(self.runs)} / {old}/{len(self.runs)}"


def write_report(store_path: str | Path, out: str | Path) -> dict:
    """Write the report of the store at ``store_path`` into folder ``out``; returns what it wrote."""
    store = Store(store_path, create=False)
    try:
        rows = store.runs()
        study = store.meta("study", {}) or {}
    finally:
        store.close()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    groups = _groups(rows)
    write_text_atomically(out / "report.md", markdown(study.get("name", Path(store_path).stem), rows, groups))
    write_text_atomically(out / "runs.csv", runs_csv(rows))
    _chart(groups, out / "changes.png")
    _side_by_side(groups, out / "cells.png")
    files = ["report.md", "runs.csv", "changes.png", "cells.png"]
    if _corruption_chart(groups, out / "corruptions.png"):
        files.append("corruptions.png")
    return {"out": str(out), "files": files, "runs": len(rows),
            "finished": sum(run.status in ("done", "imported") for run in rows), "groups": len(groups)}


def _groups(rows: list[StoredRun]) -> dict[tuple[str, str], list[MethodFigures]]:
    """Finished rows by (model, scenario), then by method variant (:func:`variant_labels`, over every
    stored row: a method version whose rows are still pending is already the current one, and rows of
    older versions go to the appendix), each in order of first appearance."""
    finished = [run for run in rows if run.status in ("done", "imported") and run.figures]
    labels = variant_labels(rows)
    grouped: dict[tuple[str, str], dict[str, list[StoredRun]]] = {}
    for run in finished:
        grouped.setdefault((run.model, run.scenario), {}).setdefault(labels[run.hash], []).append(run)
    return {key: [MethodFigures(method, sorted(runs, key=lambda run: run.seed)) for method, runs in methods.items()]
            for key, methods in grouped.items()}


def markdown(name: str, rows: list[StoredRun], groups: dict[tuple[str, str], list[MethodFigures]]) -> str:
    """The report's text (see the module docstring)."""
    from .._repair import DEFAULT_METHOD

    counts = {status: sum(run.status == status for run in rows) for status in STATUSES}
    current = {cell: [entry for entry in methods if not _other_settings(entry)] for cell, methods in groups.items()}
    lines = [f"# Study {name}", "", "## The paper's questions, answered here", "", *answers(current, DEFAULT_METHOD), "",
             _best_per_group(current, DEFAULT_METHOD), "",
             f"Runs: {len(rows)}; done {counts['done']}, imported {counts['imported']} (made before the store: no "
             f"code version or environment), failed {counts['failed']}, not run yet "
             f"{counts['pending'] + counts['running']}. Figures in points on the test hold-out (the field hold-out for a "
             "field scenario); *returned*: the model the keep rule handed back, *candidate*: the repaired model; "
             "mean ± sample sd over seeds.", ""]
    if groups:
        lines += ["## Methods on each model (the paper's Table 5; Table 7's target for a corruption)", "",
                  "Each method at the study's current settings; rows made under other settings are in the appendix.", "",
                  "![each method's returned change per cell](cells.png)", ""]
    for (model, scenario), methods in groups.items():
        lines += [f"### {model}, {scenario}", "", *paper_table5_line(model, scenario),
                  *_method_table([entry for entry in methods if not _other_settings(entry)]), ""]
    lines += default_section(groups, DEFAULT_METHOD) + choices_section(groups, DEFAULT_METHOD)
    lines += _wilcoxon_section(groups, DEFAULT_METHOD)
    lines += levels_section(groups) + corruption_section(groups) + localisation_section(groups) + search_section(current)
    lines += block_layer_section(groups)
    failed = [run for run in rows if run.status == "failed"]
    if failed:
        lines += ["## Failed runs", "", "| run | error |", "|---|---|"]
        lines += [f"| {run.cell} | {run.error} |" for run in failed]
        lines.append("")
    others = {cell: [entry for entry in methods if _other_settings(entry)] for cell, methods in groups.items()}
    if any(others.values()):
        lines += ["## Appendix: rows made under other settings", "",
                  "Rows of a method made under settings the study no longer uses (most imported from before the "
                  "store), each labelled with the settings that differ; of the tables above, only the paired "
                  "comparisons against the default and ArchRepair count them.", ""]
        for (model, scenario), entries in others.items():
            if entries:
                lines += [f"### {model}, {scenario}", "", *_method_table(entries), ""]
    return "\n".join(lines)


def _other_settings(entry: MethodFigures) -> bool:
    """Whether ``entry`` holds rows made under settings other than the study's current ones (its label
    spells them out in brackets, :func:`~.variants.variant_labels`)."""
    return "[" in entry.method


def _method_table(entries: list[MethodFigures]) -> list[str]:
    """One row per method: runs, returned and candidate change, negative flips, unseen failures fixed,
    keep counts, seconds and how many rows were imported."""
    lines = ["| method | runs | returned change | candidate change | negative flips % (returned) | "
             "negative flips % (candidate) | unseen failures fixed % (candidate) | kept (keep rule / old rule) | "
             "seconds | imported |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for entry in entries:
        imported = sum(run.status == "imported" for run in entry.runs)
        lines.append(
            f"| `{entry.method}` | {len(entry.runs)} | {entry.mean_sd('holdout_change_points')} | "
            f"{entry.mean_sd('candidate_holdout_change_points')} | {entry.mean('holdout_negative_flip_rate', 100)} | "
            f"{entry.mean('candidate_holdout_negative_flip_rate', 100)} | "
            f"{entry.mean('candidate_holdout_unseen_fix_rate', 100)} | {entry.kept()} | "
            f"{np.mean([run.seconds or 0.0 for run in entry.runs]):.0f} | {imported} |")
    return lines


def _best_per_group(groups: dict[tuple[str, str], list[MethodFigures]], default: str) -> str:
    """Per group, the method with the best mean returned change, and the default and ArchRepair's
    figures, in numbers."""
    if not groups:
        return "No finished runs yet."
    parts = []
    for (model, scenario), methods in groups.items():
        means = {entry.method: entry.values("holdout_change_points") for entry in methods}
        means = {method: float(values.mean()) for method, values in means.items() if len(values)}
        if not means:
            continue
        best = max(means, key=lambda method: (means[method], method))
        said = [f"best returned change `{best}` {means[best]:+.2f}"]
        said += [f"`{method}` {means[method]:+.2f}" for method in (default, "archrepair")
                 if method in means and method != best]
        parts.append(f"{model}, {scenario}: " + ", ".join(said))
    return "At this scale (mean returned hold-out change in points): " + "; ".join(parts) + "."


def _wilcoxon_section(groups: dict[tuple[str, str], list[MethodFigures]], default: str) -> list[str]:
    """The default method and ArchRepair against each other method, paired by (model, scenario,
    seed) on the returned change: pairs, mean difference, how often ahead, two-sided Wilcoxon p."""
    values: dict[str, dict[tuple, float]] = {}
    for (model, scenario), methods in groups.items():
        for entry in methods:
            for run in entry.runs:
                change = run.figures.get("holdout_change_points")
                if change is not None:
                    values.setdefault(entry.method, {})[(model, scenario, run.seed)] = change
    lines = []
    for reference in (default, "archrepair"):
        if reference not in values:
            continue
        lines += [f"## `{reference}` against each method (the paper's Table 6: paired by model, scenario and seed; "
                  "returned change)", "", *([PAPER_TABLE6, ""] if reference == "archrepair" else []),
                  "| method | pairs | mean difference | ahead | Wilcoxon p |", "|---|---|---|---|---|"]
        for method in values:
            if method == reference:
                continue
            pairs = [(values[reference][key], value) for key, value in values[method].items() if key in values[reference]]
            if not pairs:
                continue
            differences = [a - b for a, b in pairs]
            lines.append(f"| `{method}` | {len(pairs)} | {np.mean(differences):+.2f} | "
                         f"{sum(d > 0 for d in differences)}/{len(pairs)} | {wilcoxon_text(pairs)} |")
        lines.append("")
    return lines


def runs_csv(rows: list[StoredRun]) -> str:
    """One line per row of the store, in grid order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for run in rows:
        figures = run.figures or {}
        keep = figures.get("keep") or {}
        values = {"model": run.model, "scenario": run.scenario, "method": run.method, "seed": run.seed,
                  "status": run.status, "hash": run.hash, "seconds": run.seconds, "code_version": run.code_version,
                  "error": run.error, "kept": figures.get("kept"), "keep_p": keep.get("p_value")}
        writer.writerow([_cell(values[key] if key in values else figures.get(key)) for key in CSV_COLUMNS])
    return buffer.getvalue()


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def _chart(groups: dict[tuple[str, str], list[MethodFigures]], path: Path) -> None:
    """Bars of the mean returned change with the sample sd, one panel per group."""
    plt = _pyplot()
    panels = max(len(groups), 1)
    figure, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 3.6), squeeze=False)
    for axis, ((model, scenario), methods) in zip(axes[0], groups.items()):
        names = [entry.method for entry in methods]
        values = [entry.values("holdout_change_points") for entry in methods]
        axis.bar(range(len(names)), [v.mean() if len(v) else 0.0 for v in values],
                 yerr=[v.std(ddof=1) if len(v) > 1 else 0.0 for v in values], color="#4c72b0", capsize=3)
        axis.axhline(0, color="black", linewidth=0.8)
        axis.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        axis.set_title(f"{model}, {scenario}", fontsize=9)
        axis.set_ylabel("returned hold-out change (points)", fontsize=8)
    figure.suptitle("Study runs: change on the test hold-out (heldout protocol), mean ± sd over seeds", fontsize=9)
    _save(figure, path)


def _side_by_side(groups: dict[tuple[str, str], list[MethodFigures]], path: Path) -> None:
    """One group of bars per (model, scenario) cell, one bar per method at the study's current settings
    (the same colour in every cell): the mean returned change with the sample sd."""
    plt = _pyplot()
    current = {cell: {entry.method: entry.values("holdout_change_points") for entry in methods
                      if not _other_settings(entry) and len(entry.values("holdout_change_points"))}
               for cell, methods in groups.items()}
    names = list(dict.fromkeys(name for methods in current.values() for name in methods))
    figure, axis = plt.subplots(figsize=(max(6.0, 1.1 * len(current) * max(len(names), 1) ** 0.5 + 2), 4.2))
    width = 0.8 / max(len(names), 1)
    colours = plt.get_cmap("tab20")
    for index, name in enumerate(names):
        cells = [number for number, methods in enumerate(current.values()) if name in methods]
        values = [current[cell][name] for cell in current if name in current[cell]]
        axis.bar([cell + (index - (len(names) - 1) / 2) * width for cell in cells], [v.mean() for v in values],
                 width, yerr=[v.std(ddof=1) if len(v) > 1 else 0.0 for v in values], capsize=2,
                 color=colours(index % 20), label=name)
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set_xticks(range(len(current)), [f"{model}\n{scenario}" for model, scenario in current], fontsize=8)
    axis.set_ylabel("returned hold-out change (points)", fontsize=8)
    if names:
        axis.legend(fontsize=7, ncol=min(len(names), 4), loc="best")
    figure.suptitle("Each method's returned change per cell (current settings), mean ± sd over seeds", fontsize=9)
    _save(figure, path)


def _corruption_chart(groups: dict[tuple[str, str], list[MethodFigures]], path: Path) -> bool:
    """The paper's Fig. 6: per corruption group, the accuracy of the original and of each method's
    returned model on clean images and under each corruption (mean over runs). ``False``: no group
    has the tables, nothing written."""
    panels = [(f"{model}, {scenario}", tables) for model, scenario, _, tables in corruption_groups(groups)]
    if not panels:
        return False
    plt = _pyplot()
    figure, axes = plt.subplots(len(panels), 1, figsize=(10, 3.4 * len(panels)), squeeze=False)
    for axis, (title, tables) in zip(axes[:, 0], panels):
        names = list(next(iter(tables.values()))[0])
        pooled = [table for rows in tables.values() for table in rows]
        curves = {"original": [np.mean([table[name]["original"] for table in pooled]) for name in names]}
        curves |= {method: [np.mean([table[name]["returned"] for table in rows]) for name in names]
                   for method, rows in tables.items()}
        for label, values in curves.items():
            axis.plot(range(len(names)), values, marker="o", markersize=3, linewidth=1,
                      color="black" if label == "original" else None, label=label)
        axis.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        axis.set_ylabel("accuracy (%)", fontsize=8)
        axis.set_title(title, fontsize=9)
        axis.legend(fontsize=7, ncols=4)
    figure.suptitle("Returned models on the test hold-out, clean and under each corruption (mean over runs)", fontsize=9)
    _save(figure, path)
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> None:
    """``figure`` as a PNG at ``path``, the same bytes for the same figure."""
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    _pyplot().close(figure)
    write_bytes_atomically(path, buffer.getvalue())
