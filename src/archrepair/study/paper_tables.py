"""The report's analogues of the paper's tables, each from the store's rows alone, with the paper's
figure beside ours where they compare and the protocol difference said once per table.

Sections (each only where the study has the runs it needs):

- repair levels (the paper's Table 1): the gradient methods at neuron, layer, block and network level;
- corruption scenario (Table 7, Figs. 4 and 6, Table 8): each method's returned model on its target
  corruption, the mean of the 14 others, clean images, and the robust accuracy (mean of the 15);
- localisation (Table 9, RQ3): one block repaired at a time, against the localiser's block scores;
- the search: the block ArchRepair repaired in each run and the genotype it built;
- block versus layer (Table 10, RQ4): ArchRepair on the block, on one layer, and with its
  architecture frozen.

:func:`answers` turns these into the report's opening table (RQ1-RQ4: the paper's claim, what was
measured here with n and p, agrees or disagrees).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .store import StoredRun

LEVELS = {"neuron-gradient": "neuron", "layer-gradient": "layer", "block-gradient": "block",
          "network-gradient": "network"}
# Table 1, ResNet-18 on CIFAR-10: accuracy change from 85.00 (points) and seconds per 100 epochs
PAPER_LEVELS = {"neuron": (0.18, 650.49), "layer": (0.16, 590.47), "block": (0.19, 760.94), "network": (0.73, 1456.92)}
# Table 8, CIFAR-10 robust accuracy (%): original and ArchRepair, and the best baseline (DeepRepair)
PAPER_ROBUST = {"ResNet-18": (70.70, 74.25, 73.36), "VGG-16": (64.83, 67.49, 67.97)}
# Table 5, CIFAR-10 accuracy (%) on the test set without D_fail: original and ArchRepair
PAPER_TABLE5 = {"ResNet-18": (85.00, 88.53), "VGG-16": (83.72, 85.58), "DenseNet-121": (87.97, 91.36)}
FAMILIES = {"resnet18": "ResNet-18", "vgg16": "VGG-16", "densenet121": "DenseNet-121"}
"""The paper's name of each zoo family a study's model names start with (``densenet121-undertrained``)."""
PAPER_TABLE6 = ("The paper: ArchRepair ahead of every baseline on every model, Wilcoxon p below 0.05 (5 runs per "
                "configuration, on the test set without D_fail and no keep rule).")
PAPER_BLOCK_LAYER = (85.00, 85.02, 88.29)  # Table 10, ResNet-18 CIFAR-10: original, layer, block
BLOCK_LEVEL = ("archrepair", "archrepair-layer", "archrepair-fixed-arch")
Groups = dict[tuple[str, str], list]  # (model, scenario) -> [MethodFigures]


def mean_sd(values) -> str:
    """``mean ± sample sd`` of ``values`` with signs, two decimals (``—`` when empty)."""
    values = np.asarray(values, dtype=float)
    if not len(values):
        return "—"
    return f"{values.mean():+.2f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.2f}"


def paper_family(model: str) -> str | None:
    """The paper's name of the family of the study's model ``model`` (:data:`FAMILIES`), if it has one."""
    return FAMILIES.get(model.split("-")[0])


def paper_table5_line(model: str, scenario: str) -> list[str]:
    """The paper's Table 5 figure for a test-set group of a ResNet-18, VGG-16 or DenseNet-121 model, as a
    line and a blank line (none otherwise)."""
    family = paper_family(model)
    if scenario != "test" or family is None:
        return []
    before, after = PAPER_TABLE5[family]
    return [f"The paper (Table 5, {family} on CIFAR-10, 200-epoch full-width models, test set without `D_fail`): "
            f"{before:.2f}% → ArchRepair {after:.2f}% ({after - before:+.2f}).", ""]


def _table5_change(family: str) -> float:
    """ArchRepair's change in the paper's Table 5 for ``family`` (points)."""
    before, after = PAPER_TABLE5[family]
    return after - before


def levels_section(groups: Groups) -> list[str]:
    """Table 1: the gradient methods by level, per group that ran at least two levels."""
    lines = []
    for (model, scenario), methods in groups.items():
        found = {LEVELS[entry.method]: entry for entry in methods if entry.method in LEVELS}
        if len(found) < 2:
            continue
        if not lines:
            lines = ["## Repair levels (the paper's Table 1)", "",
                     "Gradient repair of the neuron, layer or block with the largest gradient on `D_fail`, or of "
                     "the whole network. The paper: ResNet-18 on CIFAR-10, 100 epochs, accuracy on the whole test "
                     "set from 85.00%; here: the study's budget, change on the test hold-out.", ""]
        lines += [f"### {model}, {scenario}", "",
                  "| level | runs | returned change | candidate change | seconds | paper: change | paper: s/100 epochs |",
                  "|---|---|---|---|---|---|---|"]
        for level in ("neuron", "layer", "block", "network"):
            if level in found:
                entry = found[level]
                paper_change, paper_seconds = PAPER_LEVELS[level]
                lines.append(f"| {level} | {len(entry.runs)} | {entry.mean_sd('holdout_change_points')} | "
                             f"{entry.mean_sd('candidate_holdout_change_points')} | "
                             f"{np.mean([run.seconds or 0.0 for run in entry.runs]):.0f} | {paper_change:+.2f} | "
                             f"{paper_seconds:.0f} |")
        lines.append("")
    return lines


def shift_rows(entry) -> list[dict]:
    """The ``shift_table`` of each of a method's runs that has one."""
    return [run.figures["shift_table"] for run in entry.runs if run.figures.get("shift_table")]


def shift_summary(tables: list[dict], target: str, who: str) -> dict[str, float]:
    """Mean over runs of ``who``'s accuracy (%) on the target corruption, the 14 others, clean images,
    and all 15 corruptions (robust accuracy)."""
    target_values, others, clean, robust = [], [], [], []
    for table in tables:
        corruptions = [name for name in table if name != "clean"]
        target_values.append(table[target][who])
        others.append(np.mean([table[name][who] for name in corruptions if name != target]))
        clean.append(table["clean"][who])
        robust.append(np.mean([table[name][who] for name in corruptions]))
    return {"target": float(np.mean(target_values)), "others": float(np.mean(others)),
            "clean": float(np.mean(clean)), "robust": float(np.mean(robust))}


def target_of(scenario: str, tables: list[dict]) -> str | None:
    """The scenario's corruption: the table's corruption named at the start of ``scenario``."""
    names = sorted((name for name in tables[0] if name != "clean" and scenario.startswith(name)), key=len)
    return names[-1] if names else None


def corruption_groups(groups: Groups) -> list[tuple[str, str, str, dict[str, list[dict]]]]:
    """``(model, scenario, target corruption, {method: its runs' shift tables})`` of each group whose
    runs recorded the corruption table."""
    found = []
    for (model, scenario), methods in groups.items():
        tables = {entry.method: shift_rows(entry) for entry in methods}
        tables = {method: rows for method, rows in tables.items() if rows}
        target = target_of(scenario, next(iter(tables.values()))) if tables else None
        if target is not None:
            found.append((model, scenario, target, tables))
    return found


def corruption_section(groups: Groups) -> list[str]:
    """Tables 7 and 8: per corruption group, the original and each method's returned model on the
    target corruption, the other 14, clean images, and the robust accuracy."""
    lines = []
    for model, scenario, target, tables in corruption_groups(groups):
        if not lines:
            lines = ["## Corruption scenario (the paper's Tables 7 and 8, Figs. 4 and 6)", "",
                     "Accuracy (%) of the returned model on the test hold-out: the corruption it was repaired on "
                     "(target), the mean of the other 14 at the same severity (on a seeded sample of the "
                     "hold-out), clean images, and the robust accuracy (mean of all 15; the paper's Table 8 averages "
                     "its corruption sets the same way, over the whole test set). Paper, CIFAR-10 robust accuracy: "
                     + "; ".join(f"{name} {o:.2f} → ArchRepair {a:.2f} (DeepRepair {d:.2f})"
                                 for name, (o, a, d) in PAPER_ROBUST.items()) + ".", ""]
        pooled = [table for rows in tables.values() for table in rows]
        original = shift_summary(pooled, target, "original")
        lines += [f"### {model}, {scenario}", "",
                  "| model | runs | target | other 14 | clean | robust | robust change |", "|---|---|---|---|---|---|---|",
                  f"| original (every run's hold-out) | {len(pooled)} | {original['target']:.2f} | {original['others']:.2f} | "
                  f"{original['clean']:.2f} | {original['robust']:.2f} | |"]
        for method, rows in tables.items():
            mine, before = shift_summary(rows, target, "returned"), shift_summary(rows, target, "original")
            lines.append(f"| `{method}` | {len(rows)} | {mine['target']:.2f} | {mine['others']:.2f} | "
                         f"{mine['clean']:.2f} | {mine['robust']:.2f} | {mine['robust'] - before['robust']:+.2f} |")
        lines.append("")
    return lines


def localisation_runs(methods: list) -> dict[int, dict[str, StoredRun]]:
    """``{seed: {block: run}}`` of a group's runs that repaired a named block and recorded the
    localiser's scores."""
    found: dict[int, dict[str, StoredRun]] = {}
    for entry in methods:
        for run in entry.runs:
            if run.figures.get("localization") and run.figures.get("block"):
                found.setdefault(run.seed, {})[run.figures["block"]] = run
    return {seed: blocks for seed, blocks in found.items() if len(blocks) > 1}


def level_names(runs: dict[int, dict[str, StoredRun]]) -> list[str]:
    """The localiser's levels (``top10`` ... and ``abs``), in order of the level."""
    names = {name for blocks in runs.values() for run in blocks.values()
             for row in run.figures["localization"]["blocks"].values() for name in row["vulnerable"]}
    return sorted(names, key=lambda name: (not name[3:].isdigit(), int(name[3:]) if name[3:].isdigit() else 0, name))


def localisation_figures(runs: dict[int, dict[str, StoredRun]]) -> dict:
    """Per seed: the block the localiser chose, the block whose repair did best (candidate change), and
    Spearman's rho between each level's vulnerable counts and the blocks' candidate changes."""
    from scipy.stats import spearmanr

    per_seed = {}
    for seed, blocks in sorted(runs.items()):
        names = sorted(blocks)
        changes = [blocks[name].figures["candidate_holdout_change_points"] for name in names]
        localization = next(iter(blocks.values())).figures["localization"]
        rho = {}
        for level in level_names({seed: blocks}):
            scores = [localization["blocks"].get(name, {}).get("vulnerable", {}).get(level, 0) for name in names]
            value = spearmanr(scores, changes).statistic if len(set(scores)) > 1 and len(set(changes)) > 1 else None
            rho[level] = None if value is None or np.isnan(value) else float(value)
        per_seed[seed] = {"chosen": localization["chosen"], "best": names[int(np.argmax(changes))], "rho": rho}
    return per_seed


def localisation_section(groups: Groups) -> list[str]:
    """Table 9 (RQ3): each block repaired in turn, its mean change, the localiser's mean vulnerable
    counts per level, and per level the rank correlation with the repaired change."""
    lines = []
    for (model, scenario), methods in groups.items():
        runs = localisation_runs(methods)
        if not runs:
            continue
        if not lines:
            lines = ["## Localisation: is the localised block the one whose repair helps most? (the paper's Table 9, "
                     "RQ3)", "",
                     "ArchRepair with its block named, each block in turn, on the same seeds; the localiser's vulnerable-"
                     "neuron counts per block (top-k levels) on the same `D_fail`. The paper, ResNet-18 on CIFAR-10: "
                     "block 4 has the most vulnerable neurons at every level and its repair is best (88.29% against "
                     "85.09-86.38%).", ""]
        levels = level_names(runs)
        blocks = sorted({name for seeded in runs.values() for name in seeded})
        figures = localisation_figures(runs)
        lines += [f"### {model}, {scenario} ({len(runs)} seeds)", "",
                  "| block | runs | candidate change | returned change | chosen by the localiser | "
                  + " | ".join(f"vulnerable {level}" for level in levels) + " |",
                  "|---|---|---|---|---|" + "---|" * len(levels)]
        for name in blocks:
            mine = [seeded[name] for seeded in runs.values() if name in seeded]
            counts = [np.mean([run.figures["localization"]["blocks"].get(name, {}).get("vulnerable", {}).get(level, 0)
                               for run in mine]) for level in levels]
            lines.append(f"| {name} | {len(mine)} | "
                         f"{mean_sd([run.figures['candidate_holdout_change_points'] for run in mine])} | "
                         f"{mean_sd([run.figures['holdout_change_points'] for run in mine])} | "
                         f"{sum(seed['chosen'] == name for seed in figures.values())}/{len(figures)} | "
                         + " | ".join(f"{count:.1f}" for count in counts) + " |")
        agree = sum(seed["chosen"] == seed["best"] for seed in figures.values())
        lines += ["", f"The localiser's block was the best repaired block on {agree}/{len(figures)} seeds. "
                  "Spearman's rho between vulnerable counts and candidate change, mean over seeds: "
                  + ", ".join(f"{level} {_mean_rho(figures, level)}" for level in levels) + ".", ""]
    return lines


def search_section(groups: Groups) -> list[str]:
    """What ArchRepair's search built in each run of the study's ``archrepair`` rows (its block named by
    the localiser): per run, the block, the genotype's kept edges (``source→target op``) and the
    candidate change; per cell, how often each block was chosen and how often every kept edge is the
    block's own operation (``original``)."""
    lines = []
    for (model, scenario), methods in groups.items():
        runs = [run for entry in methods if entry.method == "archrepair" for run in entry.runs
                if run.figures.get("genotype")]
        if not runs:
            continue
        if not lines:
            lines = ["## What the search built (the block the localiser chose and the searched genotype)", "",
                     "`archrepair`'s runs: the block it repaired and the kept edges of the searched cell "
                     "(`original`: the block's own layers, trained further; any other operation: a new architecture).",
                     ""]
        blocks = Counter(run.figures.get("block") or "—" for run in runs)
        own = sum(all(edge["op"] == "original" for edge in run.figures["genotype"]["edges"]) for run in runs)
        lines += [f"### {model}, {scenario}", "", "| seed | block | kept edges | candidate change |", "|---|---|---|---|"]
        for run in sorted(runs, key=lambda run: run.seed):
            edges = ", ".join(f"{edge['source']}→{edge['target']} {edge['op']}" for edge in run.figures["genotype"]["edges"])
            lines.append(f"| {run.seed} | {run.figures.get('block') or '—'} | {edges or '—'} | "
                         f"{run.figures['candidate_holdout_change_points']:+.2f} |")
        lines += ["", "Blocks chosen: " + ", ".join(f"{block} {count}/{len(runs)}" for block, count in sorted(blocks.items()))
                  + f"; every kept edge the block's own operation in {own}/{len(runs)} runs.", ""]
    return lines


def _mean_rho(figures: dict, level: str) -> str:
    values = [seed["rho"].get(level) for seed in figures.values() if seed["rho"].get(level) is not None]
    return f"{np.mean(values):+.2f}" if values else "—"


def block_layer_section(groups: Groups) -> list[str]:
    """Table 10 (RQ4): ArchRepair on the block, on one layer, and with the architecture frozen."""
    rows = []
    for (model, scenario), methods in groups.items():
        found = {entry.method: entry for entry in methods if entry.method in BLOCK_LEVEL}
        if "archrepair" in found and len(found) > 1:
            rows.append(f"| {model} | {scenario} | " + " | ".join(
                f"{found[name].mean_sd('candidate_holdout_change_points')} ({len(found[name].runs)})" if name in found
                else "—" for name in BLOCK_LEVEL) + " |")
    if not rows:
        return []
    original, layer, block = PAPER_BLOCK_LAYER
    return ["## Block versus layer, and the architecture's part (the paper's Table 10, RQ4)", "",
            "Candidate change on the test hold-out (points, runs in brackets): ArchRepair on the localised block "
            "(`archrepair`), on the one layer with the largest gradient in it (`archrepair-layer`, the paper's "
            "Layer-lv), and on the block with its architecture frozen (`archrepair-fixed-arch`: weights only). "
            f"Paper, ResNet-18 on CIFAR-10: Layer-lv {layer - original:+.2f}, Block-lv {block - original:+.2f}.", "",
            "| model | scenario | `archrepair` | `archrepair-layer` | `archrepair-fixed-arch` |", "|---|---|---|---|---|",
            *rows, ""]


def _means(methods: list, figure: str) -> dict[str, float]:
    means = {entry.method: entry.values(figure) for entry in methods}
    return {method: float(values.mean()) for method, values in means.items() if len(values)}


def answers(groups: Groups, default: str) -> list[str]:
    """The report's opening table: each research question, the paper's claim, what was measured here
    (per cell), how many cells and seeds (*n*), the two-sided Wilcoxon signed-rank ``p`` of the
    paired differences behind the verdict (over every (cell, seed) pair; "—" where the runs are not
    paired or fewer than 2), and whether the measurement agrees with the paper."""
    if not groups:
        return ["No finished runs yet."]
    rows = []
    rq1, pairs, seeds, families = [], [], set(), []
    for (model, scenario), methods in groups.items():
        means = _means(methods, "candidate_holdout_change_points")
        if scenario != "test" or "archrepair" not in means:
            continue
        rivals = {method: value for method, value in means.items() if not method.startswith(("archrepair", default))}
        best = max(rivals, key=lambda method: (rivals[method], method)) if rivals else None
        family = paper_family(model)
        part = f"{model}: ArchRepair {means['archrepair']:+.2f}"
        if family in PAPER_TABLE5:
            families.append(family)
            part += f" (the paper's {family}: {_table5_change(family):+.2f})"
        if best:
            part += f", best other method `{best}` {rivals[best]:+.2f}"
            pairs += _paired(methods, "archrepair", best, "candidate_holdout_change_points")
        if default in means:
            part += f", default `{default}` {means[default]:+.2f}"
        seeds |= _seeds(methods, "archrepair")
        rq1.append((part, best is None or means["archrepair"] >= rivals[best]))
    if rq1:
        agree = sum(ok for _, ok in rq1)
        rows.append(("RQ1: repair of test-set failures (candidate hold-out change, points)",
                     "ArchRepair first on every model ("
                     + ", ".join(f"{family} {_table5_change(family):+.2f}" for family in dict.fromkeys(families or PAPER_TABLE5))
                     + " on CIFAR-10)",
                     "; ".join(part for part, _ in rq1) + f"; ArchRepair leads on {agree}/{len(rq1)} models",
                     _n(len(rq1), seeds), wilcoxon_text(pairs), "agrees" if agree == len(rq1) else "disagrees"))
    rq2 = []
    for model, scenario, target, tables in corruption_groups(groups):
        change = {method: shift_summary(rows_, target, "candidate")["robust"]
                  - shift_summary(rows_, target, "original")["robust"] for method, rows_ in tables.items()}
        best = max(change, key=lambda method: (change[method], method))
        part = f"{model}, {scenario}: best `{best}` {change[best]:+.2f}"
        if "archrepair" in change and best != "archrepair":
            part += f", ArchRepair {change['archrepair']:+.2f}"
        rq2.append((part, best == "archrepair"))
    if rq2:
        rows.append(("RQ2: robust accuracy after a corruption repair (change, points)",
                     "ArchRepair best or second (ResNet-18 +3.55, VGG-16 +2.66 on CIFAR-10)",
                     "; ".join(part for part, _ in rq2), f"{len(rq2)} cells", "—",
                     "agrees" if all(ok for _, ok in rq2) else "disagrees"))
    rq3, seeds = [], set()
    for (model, scenario), methods in groups.items():
        runs = localisation_runs(methods)
        if runs:
            figures = localisation_figures(runs)
            agree = sum(seed["chosen"] == seed["best"] for seed in figures.values())
            seeds |= set(figures)
            rq3.append((f"{model}, {scenario}: the localised block was the best repaired block on "
                        f"{agree}/{len(figures)} seeds", agree == len(figures)))
    if rq3:
        rows.append(("RQ3: localisation", "the localised block is always the best block to repair",
                     "; ".join(part for part, _ in rq3), _n(len(rq3), seeds), "—",
                     "agrees" if all(ok for _, ok in rq3) else "disagrees"))
    rq4, pairs, seeds = [], [], set()
    for (model, scenario), methods in groups.items():
        means = _means(methods, "candidate_holdout_change_points")
        if "archrepair" in means and "archrepair-layer" in means:
            part = (f"{model}, {scenario}: block {means['archrepair']:+.2f}, layer {means['archrepair-layer']:+.2f}"
                    + (f", frozen architecture {means['archrepair-fixed-arch']:+.2f}"
                       if "archrepair-fixed-arch" in means else ""))
            pairs += _paired(methods, "archrepair", "archrepair-layer", "candidate_holdout_change_points")
            seeds |= _seeds(methods, "archrepair")
            rq4.append((part, means["archrepair"] > means["archrepair-layer"]))
    if rq4:
        rows.append(("RQ4: components (candidate change, points)", "the block better than one layer on every model",
                     "; ".join(part for part, _ in rq4), _n(len(rq4), seeds), wilcoxon_text(pairs),
                     "agrees" if all(ok for _, ok in rq4) else "disagrees"))
    if not rows:
        return ["No runs answer the paper's questions yet (see the tables below)."]
    return ["| question | the paper | measured here | n | p | verdict |", "|---|---|---|---|---|---|",
            *[f"| {' | '.join(row)} |" for row in rows]]


def _seeds(methods: list, method: str) -> set[int]:
    entry = next((entry for entry in methods if entry.method == method), None)
    return {run.seed for run in entry.runs} if entry else set()


def _paired(methods: list, first: str, second: str, figure: str) -> list[tuple[float, float]]:
    """``(first's figure, second's figure)`` on each seed both have."""
    by = {entry.method: {run.seed: run.figures.get(figure) for run in entry.runs} for entry in methods}
    mine, theirs = by.get(first, {}), by.get(second, {})
    return [(mine[seed], theirs[seed]) for seed in sorted(set(mine) & set(theirs))
            if mine[seed] is not None and theirs[seed] is not None]


def _n(cells: int, seeds: set[int]) -> str:
    return f"{cells} {'cell' if cells == 1 else 'cells'}, {len(seeds)} seeds"


def wilcoxon_text(pairs: list[tuple[float, float]]) -> str:
    """Two-sided Wilcoxon signed-rank ``p`` of the pairs (:func:`~archrepair._comparison.summary.paired_wilcoxon`),
    or "—" where it is undefined."""
    from .._comparison.summary import paired_wilcoxon

    p = paired_wilcoxon(pairs)
    return "—" if p is None else f"{p:.2g}"
