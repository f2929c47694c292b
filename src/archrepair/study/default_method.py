"""The report's sections on the default method (``auto``): in each (model, scenario) cell, how it
fares against the best other method run on the same seeds, and what it chose.

Only rows run in the store at the newest settings count (a variant label without brackets, status
``done``): rows imported from before the store and older method versions are left out. A rival counts
in a cell only when it has every seed the default has there.
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

import numpy as np

from .paper_tables import mean_sd

HARM_POINTS = -0.3
"""A returned model this many points below the original on the hold-out counts as harm."""

TOLERANCE_POINTS = {"test": 0.3, "field": 0.5}
"""How far (points) the default's mean returned change may trail the best rival's in a cell and still be
the right default there: test or corruption failures, and failures from the field (whose hold-out is smaller)."""

MOST_SEEDS_AHEAD = Fraction(5, 8)
"""The largest share of the seeds on which the best rival may be strictly ahead of the default."""


def _runs_by_seed(entry) -> dict[int, float]:
    return {run.seed: run.figures["holdout_change_points"] for run in entry.runs
            if run.status == "done" and run.figures.get("holdout_change_points") is not None}


def default_section(groups: dict, default: str) -> list[str]:
    """Per cell: the default's mean returned change and its method version, the best rival's (highest mean over the
    default's seeds), the gap, on how many seeds the rival was strictly ahead, whether the default
    holds there (the gap within :data:`TOLERANCE_POINTS` and the rival ahead on at most
    :data:`MOST_SEEDS_AHEAD` of the seeds), and the default's returned models below 0 and below
    :data:`HARM_POINTS` (with their keep counts)."""
    lines, harmed = [], []
    for (model, scenario), methods in groups.items():
        entries = {entry.method: entry for entry in methods}
        if default not in entries:
            continue
        own = _runs_by_seed(entries[default])
        if not own:
            continue
        rivals = {}
        for name, entry in entries.items():
            values = _runs_by_seed(entry)
            if name != default and "[" not in name and set(own) <= set(values):
                rivals[name] = {seed: values[seed] for seed in own}
        seeds = sorted(own)
        mine = np.array([own[seed] for seed in seeds])
        below = int((mine < 0).sum())
        harmed += [(model, scenario, run) for run in entries[default].runs
                   if run.status == "done" and (run.figures.get("holdout_change_points") or 0) < HARM_POINTS]
        version = (entries[default].runs[0].config or {}).get("method_version")
        mine_text = f"{mean_sd(mine)} | {'—' if version is None else f'v{version}'}"
        if not rivals:
            lines.append(f"| {model}, {scenario} | {len(seeds)} | {mine_text} | — | — | — | — | — | {below} |")
            continue
        best = max(rivals, key=lambda name: (np.mean(list(rivals[name].values())), name))
        theirs = np.array([rivals[best][seed] for seed in seeds])
        gap, ahead = mine.mean() - theirs.mean(), int((theirs > mine).sum())
        field = any((run.config or {}).get("field") for run in entries[default].runs)
        holds = gap >= -TOLERANCE_POINTS["field" if field else "test"] - 1e-9 and ahead <= MOST_SEEDS_AHEAD * len(seeds)
        lines.append(f"| {model}, {scenario} | {len(seeds)} | {mine_text} | `{best}` | {mean_sd(theirs)} | "
                     f"{gap:+.2f} | {ahead}/{len(seeds)} | {'yes' if holds else 'no'} | {below} |")
    if not lines:
        return []
    text = ["## The default against the best other method of each cell", "",
            "Returned hold-out change in points, mean ± sd over the default's seeds; rivals with every one of those "
            "seeds at the same settings; *ahead*: seeds on which the best rival's returned change is strictly higher; "
            f"*holds*: the gap is at least −{TOLERANCE_POINTS['test']} points (−{TOLERANCE_POINTS['field']} on a field "
            f"set) and the rival is ahead on at most {MOST_SEEDS_AHEAD.numerator} of every {MOST_SEEDS_AHEAD.denominator} "
            "seeds.",
            "", "| cell | seeds | default | its version | best rival | rival | gap | rival ahead | holds | default below 0 |",
            "|---|---|---|---|---|---|---|---|---|---|", *lines, ""]
    if harmed:
        text += [f"Returned models of the default below {HARM_POINTS:+.1f} points:", ""]
        for model, scenario, run in harmed:
            keep = run.figures.get("keep") or {}
            text.append(f"- {model}, {scenario}, seed {run.seed}: {run.figures['holdout_change_points']:+.2f} "
                        f"(keep rows: option alone right {keep.get('candidate_only_right')}, original alone "
                        f"{keep.get('original_only_right')}, p {keep.get('p_value')})")
        text.append("")
    return text


def choices_section(groups: dict, default: str) -> list[str]:
    """Per cell, what the default returned (the option, else the original), how many options passed
    Holm's procedure, the candidates' mean seconds, and how often the search trained and was returned."""
    lines = []
    for (model, scenario), methods in groups.items():
        entry = next((entry for entry in methods if entry.method == default), None)
        runs = [run for run in entry.runs if run.status == "done" and run.figures.get("choice")] if entry else []
        if not runs:
            continue
        returned, seconds, passed, searched, search_won = Counter(), {}, [], 0, 0
        for run in runs:
            keep, choice = run.figures.get("keep") or {}, run.figures["choice"]
            returned[keep.get("chosen") or "original"] += 1
            passed.append(sum(test.get("passed", False) for test in keep.get("tests") or []))
            for candidate in choice.get("candidates") or []:
                if candidate.get("status", "").startswith("ran") and "seconds" in candidate:
                    seconds.setdefault(candidate["name"], []).append(candidate["seconds"])
                    searched += candidate.get("method") == "archrepair"
            search_won += (keep.get("chosen") or "").startswith("archrepair") and keep.get("decision") == "repaired"
        counts = ", ".join(f"{name} {count}" for name, count in sorted(returned.items(), key=lambda item: (-item[1],
                                                                                                          item[0])))
        spent = ", ".join(f"{name} {np.mean(values):.0f}" for name, values in seconds.items())
        lines.append(f"| {model}, {scenario} | {len(runs)} | {counts} | {np.mean(passed):.1f} | {spent} | "
                     f"{searched}/{len(runs)} | {search_won} |")
    if not lines:
        return []
    return [f"## What `{default}` chose", "",
            "Per cell: the option returned by the keep rule in each run (*original*: none passed), the mean number "
            "of options that passed Holm's procedure, each candidate's mean seconds, and in how many runs the "
            "architecture search trained and was returned.", "",
            "| cell | runs | returned | options passed | seconds per candidate | search trained | search returned |",
            "|---|---|---|---|---|---|---|", *lines, ""]
