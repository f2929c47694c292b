"""Write a comparison as JSON (the source of truth), Markdown, CSV and a bar chart."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, fields
from pathlib import Path

from ..fileio import write_text_atomically
from .chart import plot_comparison
from .record import Comparison, ComparisonRow
from .summary import summarise

JSON_FILE, MARKDOWN_FILE, CSV_FILE, CHART_FILE = "comparison.json", "comparison.md", "comparison.csv", "comparison.png"
CSV_COLUMNS = [f.name for f in fields(ComparisonRow)
               if f.name not in ("genotype", "repair_train_indices", "val_rows", "keep")
               and not f.name.endswith("interval_points")] + \
    ["keep_p_value", "keep_candidate_only_right", "keep_original_only_right", "kept_old_rule"]


def write_comparison(comparison: Comparison, folder: str | Path, reference: str = "archrepair") -> dict[str, Path]:
    """Write ``comparison.json``, ``.md``, ``.csv`` (one line per run) and ``.png`` into ``folder``;
    the last three are derived from the JSON alone. Returns the paths by kind."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / JSON_FILE, "markdown": folder / MARKDOWN_FILE, "csv": folder / CSV_FILE,
             "chart": folder / CHART_FILE}
    write_text_atomically(paths["json"], comparison.to_json())
    write_text_atomically(paths["markdown"], markdown_table(comparison, reference))
    write_text_atomically(paths["csv"], csv_rows(comparison))
    plot_comparison(comparison, paths["chart"])
    return paths


def markdown_table(comparison: Comparison, reference: str = "archrepair") -> str:
    """Per-method means ± standard deviations over seeds, with the Wilcoxon p-value against ``reference``."""
    lines = [
        (f"Budget: {comparison.budget}; seeds {comparison.seeds}; {len(comparison.failures['fail_indices'])} failures; "
         f"data {comparison.data['spec']}. The paper's figure: accuracy on the test set without D_fail."),
        "",
        (f"| method | runs | before % | after % | change (pts) | D_fail fixed % | broken | seconds | parameters "
         f"| kept repaired | kept by the old rule | p vs {reference} |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in summarise(comparison, reference):
        p = entry["p_vs_reference"]
        lines.append(
            f"| {entry['method']} | {entry['runs']} | {100 * entry['accuracy_before']:.2f} "
            f"| {100 * entry['accuracy_after']:.2f} ± {100 * entry['accuracy_after_sd']:.2f} "
            f"| {entry['change_points']:+.2f} ± {entry['change_points_sd']:.2f} "
            f"| {100 * entry['fix_rate']:.1f} ± {100 * entry['fix_rate_sd']:.1f} | {entry['broken']:.0f} "
            f"| {entry['seconds']:.1f} ± {entry['seconds_sd']:.1f} | {entry['parameters_after']:,} "
            f"| {entry['kept_repaired']}/{entry['runs']} | {entry['kept_repaired_old_rule']}/{entry['runs']} "
            f"| {'-' if p is None else f'{p:.3f}'} |"
        )
    lines += _holdout_table(comparison, reference)
    for failed in comparison.errors:
        lines.append(f"\nFailed: {failed['method']} on seed {failed['seed']}: {failed['error']}")
    return "\n".join(lines) + "\n"


def _holdout_table(comparison: Comparison, reference: str) -> list[str]:
    """The test hold-out's figures (``heldout`` protocol), for the returned model and the candidate."""
    summary = [entry for entry in summarise(comparison, reference) if "holdout_change_points" in entry]
    if not summary:
        return []
    lines = ["", "On the test hold-out (seen by neither the model nor the repair); returned model, then the "
                 "candidate (the repaired model, whichever won). Mean ± sd over seeds; flips and fixes in %.", "",
             f"| method | change (pts) | negative flips | unseen failures fixed | candidate change (pts) | candidate "
             f"negative flips | candidate unseen fixed | candidate D_fail fixed | candidate paper's figure | p vs {reference} |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for entry in summary:
        p = entry["p_vs_reference"]
        lines.append(
            f"| {entry['method']} | {entry['holdout_change_points']:+.2f} ± {entry['holdout_change_points_sd']:.2f} "
            f"| {100 * entry['holdout_negative_flip_rate']:.2f} | {100 * entry['holdout_unseen_fix_rate']:.1f} "
            f"| {entry['candidate_holdout_change_points']:+.2f} ± {entry['candidate_holdout_change_points_sd']:.2f} "
            f"| {100 * entry['candidate_holdout_negative_flip_rate']:.2f} "
            f"| {100 * entry['candidate_holdout_unseen_fix_rate']:.1f} | {100 * entry['candidate_fix_rate']:.1f} "
            f"| {entry['candidate_paper_change_points']:+.2f} | {'-' if p is None else f'{p:.3f}'} |")
    if all("home_change_points" in entry for entry in summary):
        lines += ["", "On the home test set (the training distribution; a field repair sees none of it): returned "
                      "model, mean ± sd over seeds.", "", "| method | home change (pts) | home negative flips (%) |",
                  "|---|---|---|"]
        lines += [f"| {e['method']} | {e['home_change_points']:+.2f} ± {e['home_change_points_sd']:.2f} | "
                  f"{100 * e['home_negative_flip_rate']:.2f} |" for e in summary]
    return lines


def csv_rows(comparison: Comparison) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in comparison.rows:
        keep = row.keep or {}
        writer.writerow(asdict(row) | {"keep_p_value": keep.get("p_value"),
                                       "keep_candidate_only_right": keep.get("candidate_only_right"),
                                       "keep_original_only_right": keep.get("original_only_right"),
                                       "kept_old_rule": keep.get("decision_old_rule")})
    return buffer.getvalue()
