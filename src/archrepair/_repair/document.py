"""``report.md`` beside a repair's ``report.json``: what was kept and why, before and after, the
change per class (with a chart), the localisation table and the repaired block's architecture
(drawn), for a reader rather than a program. Everything comes from the report alone."""

from __future__ import annotations

from pathlib import Path

from ..fileio import write_text_atomically

MARKDOWN_FILE, CLASS_CHART, ARCHITECTURE_CHART = "report.md", "per_class.png", "architecture.png"

# The figures a failure split's protocol defines: (label, key before, key after, kind). A protocol
# added later registers its own rows here.
PROTOCOL_ROWS = {
    "paper": [
        ("test set without D_fail (the paper's figure)", "eval_accuracy_before", "eval_accuracy_after", "percent"),
        ("D_fail (seen by the repair: the fix rate)", "fail_accuracy_before", "fail_fixed_rate", "percent"),
        ("whole test set (D_fail, which the repair trained on, included)", "test_accuracy_before",
         "test_accuracy_after", "percent"),
        ("parameters", "parameters_before", "parameters_after", "count"),
    ],
}


def write_report_markdown(report: dict, folder: Path) -> list[Path]:
    """Write ``report.md`` and its two charts into ``folder``; returns the paths written."""
    folder = Path(folder)
    charts = [_class_chart(report, folder / CLASS_CHART)]
    if report.get("genotype"):
        charts.append(_architecture_chart(report, folder / ARCHITECTURE_CHART))
    write_text_atomically(folder / MARKDOWN_FILE, markdown(report))
    return [folder / MARKDOWN_FILE, *charts]


def _candidate_lines(details: dict, candidates: list[dict]) -> list[str]:
    """The ``auto`` candidates' table: each trained candidate and its interpolations (seconds, share,
    validation figures), the soup, the skipped ones and why."""
    mix = details.get("chosen_mix")
    chosen = f"`{details.get('chosen')}`" + (f", weights mixed at α {mix:g}" if mix not in (None, 1.0) else "")
    lines = ["", f"## Candidates (returned or, when none passed the keep rule, best validated: {chosen}; score: "
                 f"accuracy − {details.get('flip_weight', 0):g} × negative flips)", "",
             "| candidate | method | status | seconds (share) | validation accuracy | validation negative flips "
             "| validation loss | unit |",
             "|---|---|---|---|---|---|---|---|"]
    for c in candidates:
        if c["status"] != "ran":
            lines.append(f"| {c['name']} | {c['method']} | {c['status']} | - | - | - | - | - |")
            continue
        share = "" if c.get("share_seconds") is None else f" ({c['share_seconds']:.0f})"
        seconds = f"{c['seconds']:.1f}{share}" if "seconds" in c else "-"
        unit = c.get("block") or (" + ".join(c["members"]) if c.get("members") else "-")
        options = [(c["name"], "ran", seconds, c)] + \
            [(f"{c['name']} × α {m['alpha']:g}", "mixed", "-", m) for m in c.get("mixes", [])]
        for name, status, spent, figures in options:
            lines.append(f"| {name} | {c['method']} | {status} | {spent} | "
                         f"{100 * figures['val_accuracy']:.2f}% | {100 * figures['val_negative_flip_rate']:.2f}% | "
                         f"{figures['val_loss']:.4f} | {unit} |")
    return lines


def markdown(report: dict) -> str:
    """The report as Markdown (the charts are referenced by file name)."""
    kept = report["kept"]
    lines = [f"# {report['method']} on `{report.get('base_checkpoint') or 'the model'}`", ""]
    why = (f"validation accuracy {100 * report['val_accuracy_repaired']:.2f}% (mean loss "
           f"{report['val_loss_repaired']:.4f}) for the repaired model against {100 * report['val_accuracy_original']:.2f}% "
           f"({report['val_loss_original']:.4f}) for the original, on {report['val_examples']} validation examples")
    keep = report.get("keep") or {}
    if keep.get("rule") == "mcnemar":
        why = (f"on {keep['rows']} keep rows that no training or choice saw ({keep['rows_from']}), the candidate alone "
               f"is right on {keep['candidate_only_right']} and the original alone on {keep['original_only_right']}: "
               f"one-sided McNemar p {keep['p_value']:.3g} against the level {keep['level']:g}; by validation "
               f"accuracy alone (the paper's rule) the {keep['decision_old_rule']} model would have been kept; {why}")
    if kept == "repaired":
        lines.append(f"**Kept: the repaired model** ({why}).")
    else:
        lines.append(f"**Kept: the original model**: the saved model is the input model, so every figure after "
                     f"equals the one before; the repaired candidate did not show a gain ({why}). What the candidate "
                     "was is shown below.")
    notes = (report.get("details") or {}).get("notes", [])
    if notes:
        lines += ["", *(f"- Note: {note}" for note in notes)]
    lines += ["", "| | before | after | change |", "|---|---|---|---|", *_holdout_rows(report)]
    for label, before, after, kind in PROTOCOL_ROWS.get(report.get("protocol", "paper"), PROTOCOL_ROWS["paper"]):
        if report.get(before) is None or report.get(after) is None:
            continue
        label = label.replace("test set", tested_set(report))
        lines.append(f"| {label} | {_format(report[before], kind)} | {_format(report[after], kind)} | "
                     f"{_change(report[before], report[after], kind)} |")
    lines.append(f"| latency (ms per batch of {report['latency_batch']}, median of {report['latency_repeats']}) | "
                 f"{report['latency_ms_before']:.1f} | {report['latency_ms_after']:.1f} | {latency_change(report)} |")
    lines += ["", f"Examples of the {tested_set(report)} without D_fail: {report['eval_fixed']} fixed, "
              f"{report['eval_broken']} broken (of {report['eval_examples']}); D_fail: {report['fail_examples']} examples.", "",
              f"## Per class ({tested_set(report)} without D_fail)", "", f"![change per class]({CLASS_CHART})", "",
              "| class | change (points) | fixed | broken |", "|---|---|---|---|"]
    for name, change in report["per_class_change_points"].items():
        lines.append(f"| {name} | {change:+.2f} | {report.get('per_class_fixed', {}).get(name, '-')} | "
                     f"{report.get('per_class_broken', {}).get(name, '-')} |")
    candidates = (report.get("details") or {}).get("candidates")
    if candidates:
        lines += _candidate_lines(report["details"], candidates)
    if len(keep.get("tests") or []) > 1:
        lines += ["", f"## Keep tests (Holm's procedure, family-wise level {keep['level']:g}; best validated first)", "",
                  "| option | candidate alone right | original alone right | p | threshold | passed |",
                  "|---|---|---|---|---|---|"]
        for test in keep["tests"]:
            mark = " (returned)" if test["chosen"] else ""
            lines.append(f"| {test['option']}{mark} | {test['candidate_only_right']} | {test['original_only_right']} | "
                         f"{test['p_value']:.3g} | {test['threshold']:.3g} | {'yes' if test['passed'] else 'no'} |")
    localization = (report.get("details") or {}).get("localization")
    if localization:
        key = f"top{localization['config']['level']}" if localization["config"].get("absolute") is None else "abs"
        lines += ["", "## Localisation", "", f"Chosen: `{localization['chosen']}` ({localization['criterion']}).", "",
                  f"| block | neurons | vulnerable ({key}) | mean score | shift added |", "|---|---|---|---|---|"]
        for row in localization["blocks"]:
            shift = "-" if row.get("shift") is None else f"{row['shift']:.3f}"
            lines.append(f"| `{row['block']}` | {row['neurons']} | {row['vulnerable'][key]} | {row['mean_score']:.4f} "
                         f"| {shift} |")
    if report.get("genotype"):
        edges = report["genotype"]["edges"]
        new = [e for e in edges if e["op"] != "original"]
        whose = "the saved block" if kept == "repaired" else "the discarded candidate"
        lines += ["", f"## Architecture of `{report['block']}` ({whose})", "", f"![architecture]({ARCHITECTURE_CHART})", "",
                  f"{len(edges)} edges, {len(new)} of them new: "
                  + (", ".join(f"{e['source']}->{e['target']} {e['op']}" for e in new) or "the block kept its own layers")
                  + "."]
    seconds = ", ".join(f"{name} {value:.1f} s" for name, value in report.get("phase_seconds", {}).items())
    lines += ["", f"Time: {seconds}; total {report.get('total_seconds', 0):.1f} s. Seed {report['seed']}; "
              f"environment {report.get('environment', {})}.", ""]
    return "\n".join(lines)


def _holdout_rows(report: dict) -> list[str]:
    """The ``heldout`` protocol's own figures, first: the returned model (and a discarded candidate)
    on the test hold-out no repair saw (a field repair: the field hold-out, then the home test set),
    with its interval, McNemar p, negative flips and unseen failures fixed (the rows after them are
    the paper's figures)."""
    rows = []
    held_out = "field hold-out" if report.get("field") else "test hold-out"
    for whose in ("returned", "candidate"):
        judged = (report.get("judged") or {}).get(whose) or {}
        held = judged.get("holdout")
        if not held or (whose == "candidate" and report["kept"] == "repaired"):
            continue
        low, high = held["change_interval_points"]
        name = "returned model" if whose == "returned" else "discarded candidate"
        rows.append(f"| **{held_out} ({held['examples']}, never seen by the repair), {name}** | "
                    f"{100 * held['accuracy_before']:.2f}% | {100 * held['accuracy_after']:.2f}% | "
                    f"**{held['change_points']:+.2f} points** (95% {low:+.2f} to {high:+.2f}; McNemar p "
                    f"{held['mcnemar_p']:.3g}) |")
        home = judged.get("home")
        if home:  # what a field repair broke on the training distribution
            home_low, home_high = home["change_interval_points"]
            rows.append(f"| **home test set ({home['examples']}, the training distribution), {name}** | "
                        f"{100 * home['accuracy_before']:.2f}% | {100 * home['accuracy_after']:.2f}% | "
                        f"**{home['change_points']:+.2f} points** (95% {home_low:+.2f} to {home_high:+.2f}); "
                        f"negative flips {100 * home['negative_flip_rate']:.2f}% |")
        rows += [f"| negative flips on the {held_out} ({name}: right before, wrong after) | | "
                 f"{held['negative_flips']} | {100 * held['negative_flip_rate']:.2f}% of the hold-out |",
                 f"| unseen failures fixed ({name}: hold-out failures right after) | | {held['positive_flips']} of "
                 f"{held['unseen_failures']} | {100 * held['unseen_fix_rate']:.1f}% |"]
    return rows


def tested_set(report: dict) -> str:
    """What the split's indices point into: the ``field set`` of a field repair, else the ``test set``."""
    return "field set" if report.get("field") else "test set"


def latency_change(report: dict) -> str:
    """The latency change as the report states it: a change beyond the noise, or why there is none."""
    if report["latency_change_ms"] is None:
        return f"none ({report['latency_no_change_why']})"
    return f"{report['latency_change_ms']:+.1f} ms (noise {report['latency_noise_ms']:.1f} ms)"


def _format(value, kind: str) -> str:
    return f"{100 * value:.2f}%" if kind == "percent" else f"{value:,}" if kind == "count" else f"{value:.1f}"


def _change(before, after, kind: str) -> str:
    if kind == "percent":
        return f"{100 * (after - before):+.2f} points"
    return f"{after - before:+,}" if kind == "count" else f"{after - before:+.1f}"


def _class_chart(report: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["per_class_change_points"])
    fixed = [report.get("per_class_fixed", {}).get(n, 0) for n in names]
    broken = [-report.get("per_class_broken", {}).get(n, 0) for n in names]
    figure, axis = plt.subplots(figsize=(max(5.0, 0.5 * len(names) + 1), 3))
    axis.bar(names, fixed, color="tab:green", label="fixed")
    axis.bar(names, broken, color="tab:red", label="broken")
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set_ylabel("examples")
    axis.set_title(f"{report['method']} ({report.get('protocol', 'paper')} protocol, {report['kept']} model kept): "
                   f"fixed (up) and broken (down) per class\non the test set without D_fail ({report['eval_examples']} "
                   "examples)", fontsize=9)
    axis.legend()
    plt.setp(axis.get_xticklabels(), rotation=45, ha="right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _architecture_chart(report: dict, path: Path) -> Path:
    """Nodes in a row; an arc per kept edge: grey for the block's own layers, coloured for new operations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Arc

    genotype = report["genotype"]
    count = len(genotype["shapes"])
    figure, axis = plt.subplots(figsize=(max(4.0, 1.2 * count), 2.6))
    for edge in genotype["edges"]:
        left, right = edge["source"], edge["target"]
        original = edge["op"] == "original"
        axis.add_patch(Arc(((left + right) / 2, 0), right - left, 0.6 * (right - left), theta1=0, theta2=180,
                           color="grey" if original else "tab:blue", linewidth=1.5 if original else 2.5))
        label = "own layer" if original else edge["op"]
        axis.text((left + right) / 2, 0.3 * (right - left) + 0.05, label, ha="center", fontsize=7,
                  color="grey" if original else "tab:blue")
    axis.scatter(range(count), [0] * count, s=120, color="black", zorder=3)
    for node, shape in enumerate(genotype["shapes"]):
        axis.text(node, -0.25, "x".join(str(v) for v in shape), ha="center", fontsize=7)
    axis.set_xlim(-0.5, count - 0.5)
    axis.set_ylim(-0.5, 0.3 * count + 0.3)
    axis.axis("off")
    axis.set_title(f"{report['block']}: grey = the block's own layers, blue = new operations", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
