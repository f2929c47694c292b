"""The default repair (``auto``) and the keep rule, on the held-out bench (#27).

    python benchmarks/repair_default.py --models undertrained --seeds 0,1,2,3,4,5,6,7 \\
        --methods auto,train-more-block,block-gradient,archrepair
    python benchmarks/repair_default.py --models undertrained --seeds 0,1,2,3 --methods apricot
    python benchmarks/repair_default.py --models converged --seeds 0,1,2,3,4,5,6,7 \\
        --methods auto,archrepair,block-gradient,train-more-block,train-more-network,archrepair+distill,mode,archrepair-layer
    python benchmarks/repair_default.py --corruption gaussian_noise --models undertrained,converged --seeds 0,1,2,3 \\
        --methods auto,augmix
    python benchmarks/repair_default.py --corruption contrast --models undertrained,converged --seeds 0,1 \\
        --methods auto,archrepair,augmix,train-more-block

Every run (120 s each, the same tasks as ``repair_heldout.py``; the new default's candidates share
its 120 s) is a row of the shared store (``heldout_rows.py``) with the keep rule's record: the
discordant counts on the keep rows, the p-value, the decision under the keep rule and under the old
validation rule on the same candidate. Prints the method tables, then what #27 asks: the default
against ``train-more-block`` (returned, per seed) and against ArchRepair's candidate (Wilcoxon), the
negative flips, how many real repairs the keep rule keeps, the returned changes on the converged
model, the corruption scenario's Table 7 figures, and ``auto``'s budget split; one JSON object last.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
from common import print_headline
from heldout_rows import add_arguments, figure, paired_summary, rows_and_tables

METHODS = "auto,train-more-block,block-gradient,archrepair"


def keep_counts(rows: list[dict], kind: str, methods: list[str]) -> dict:
    """Per method, runs kept under the keep rule and under the old rule (the same candidates)."""
    figures = {}
    for method in methods:
        mine = [r for r in rows if r["model"] == kind and r["method"] == method and r.get("keep")]
        if not mine:
            continue
        new = sum(r["keep"]["decision"] == "repaired" for r in mine)
        old = sum(r["keep"]["decision_old_rule"] == "repaired" for r in mine)
        p_values = ", ".join(f"{r['keep']['p_value']:.2g}" for r in mine)
        print(f"{kind} {method}: kept {new}/{len(mine)} by the keep rule, {old}/{len(mine)} by validation accuracy "
              f"(p per seed: {p_values})")
        figures[f"{kind}_{method}_kept"] = f"{new}/{len(mine)}"
        figures[f"{kind}_{method}_kept_old_rule"] = f"{old}/{len(mine)}"
    return figures


def default_against(rows: list[dict], kind: str) -> dict:
    """``auto`` against train-more-block (returned, per seed; negative flips) and ArchRepair's candidate."""
    figures = {}
    by = {(r["seed"], r["method"]): r for r in rows if r["model"] == kind}
    seeds = sorted(s for s, m in by if m == "auto")
    if not seeds:
        return figures
    mine = [r for r in rows if r["model"] == kind]
    if any((s, "train-more-block") in by for s in seeds):
        pairs = [s for s in seeds if (s, "train-more-block") in by]
        at_least = sum(figure(by[(s, "auto")], "returned", "change_points")
                       >= figure(by[(s, "train-more-block")], "returned", "change_points") for s in pairs)
        flips = {m: 100 * np.mean([figure(by[(s, m)], "returned", "negative_flip_rate") for s in pairs])
                 for m in ("auto", "train-more-block")}
        print(f"{kind}: auto returned >= train-more-block returned on {at_least}/{len(pairs)} seeds; negative flips "
              f"{flips['auto']:.2f}% against {flips['train-more-block']:.2f}%")
        figures |= {f"{kind}_auto_at_least_train_more_block": f"{at_least}/{len(pairs)}",
                    f"{kind}_auto_negative_flip_percent": round(float(flips["auto"]), 2),
                    f"{kind}_train_more_block_negative_flip_percent": round(float(flips["train-more-block"]), 2)}
        summary = paired_summary(mine, "train-more-block", "returned", reference="auto")
        print(f"{kind}: auto - train-more-block (returned): {summary}")
    for other, whose in (("archrepair", "candidate"), ("archrepair", "returned")):
        pairs = [s for s in seeds if (s, other) in by]
        if not pairs:
            continue
        differences = np.array([figure(by[(s, "auto")], "returned", "change_points")
                                - figure(by[(s, other)], whose, "change_points") for s in pairs])
        from heldout_rows import wilcoxon_p

        p = wilcoxon_p(differences)
        print(f"{kind}: auto returned - {other} {whose}: {', '.join(f'{d:+.2f}' for d in differences)}; mean "
              f"{differences.mean():+.2f}, above in {int((differences > 0).sum())}/{len(pairs)}, Wilcoxon p {p}")
        figures[f"{kind}_auto_minus_{other}_{whose}_points"] = round(float(differences.mean()), 2)
        figures[f"{kind}_auto_above_{other}_{whose}"] = f"{int((differences > 0).sum())}/{len(pairs)}"
        figures[f"{kind}_auto_vs_{other}_{whose}_wilcoxon_p"] = p
    return figures


def returned_changes(rows: list[dict], kind: str, methods: list[str]) -> dict:
    """Mean returned hold-out change per method, and the runs below -0.3 points."""
    figures, below = {}, []
    for method in methods:
        changes = [(r["seed"], figure(r, "returned", "change_points")) for r in rows
                   if r["model"] == kind and r["method"] == method]
        if not changes:
            continue
        values = np.array([c for _, c in changes])
        below += [f"{method} seed {s} ({c:+.2f})" for s, c in changes if c < -0.3]
        print(f"{kind} {method}: returned change mean {values.mean():+.3f} over {len(values)} seeds, "
              f">= 0 on {int((values >= 0).sum())}/{len(values)}, min {values.min():+.2f}")
        figures[f"{kind}_{method}_returned_change_points"] = round(float(values.mean()), 3)
        figures[f"{kind}_{method}_returned_at_least_zero"] = f"{int((values >= 0).sum())}/{len(values)}"
    print(f"{kind}: runs below -0.3 points: {len(below)} ({', '.join(below) or 'none'})")
    figures[f"{kind}_runs_below_minus_0.3"] = len(below)
    return figures


def budget_split(rows: list[dict], kind: str) -> dict:
    """``auto``'s candidates: how often each ran and was chosen, mean seconds and validation accuracy."""
    mine = [r for r in rows if r["model"] == kind and r["method"] == "auto" and r.get("candidates")]
    if not mine:
        return {}
    chosen = Counter(r["chosen"] for r in mine)
    print(f"{kind} auto: candidate | ran | chosen | seconds (mean) | share given (mean) | val accuracy % (mean)")
    figures = {}
    for name in dict.fromkeys(c["name"] for r in mine for c in r["candidates"]):
        runs = [c for r in mine for c in r["candidates"] if c["name"] == name and c["status"] == "ran"]
        skipped = [c["status"] for r in mine for c in r["candidates"] if c["name"] == name and c["status"] != "ran"]
        shares = [c["share_seconds"] for c in runs if c.get("share_seconds") is not None]
        print(f"  {name} | {len(runs)}/{len(mine)} | {chosen.get(name, 0)} | "
              f"{np.mean([c['seconds'] for c in runs]) if runs else 0:.1f} | {np.mean(shares) if shares else 0:.1f} | "
              f"{100 * np.mean([c['val_accuracy'] for c in runs]) if runs else float('nan'):.2f}"
              + (f" | {Counter(skipped).most_common(1)[0][0]}" if skipped else ""))
        figures[f"{kind}_auto_{name}_chosen"] = chosen.get(name, 0)
        figures[f"{kind}_auto_{name}_ran"] = len(runs)
    mixes = Counter(_chosen_alpha(r) for r in mine)
    print(f"{kind} auto: weights of the chosen option (α 1: as trained; replayed from the recorded validation "
          f"figures): " + ", ".join(f"α {alpha:g} {count}/{len(mine)}" for alpha, count in sorted(mixes.items())))
    figures |= {f"{kind}_auto_chosen_alpha_{alpha:g}": count for alpha, count in mixes.items()}
    return figures


def _chosen_alpha(row: dict) -> float:
    """The α of the option ``auto`` chose in ``row`` (replayed from its candidates' records at flip
    weight 0, the default; α 1: the weights as trained)."""
    from auto_design import replay_choice

    return replay_choice(row["candidates"], 0.0, mixes=True)[1].get("alpha", 1.0)


def shift_figures(rows: list[dict], reference: str = "auto") -> dict:
    """The Table 7 layout (``baselines_data.shift_layout``) and, paired by (model, seed), ``reference``
    minus each other method's returned model on the target corruption, robust accuracy (the mean
    over the 15 corruptions) and clean images, with each method's clean-accuracy loss."""
    from baselines_data import shift_layout

    tables = [r for r in rows if r.get("shift_table")]
    if not tables:
        return {}
    target = tables[0]["settings"]["corruption"]
    figures = shift_layout(tables, target)

    def measures(row: dict, whose: str) -> dict:
        table = row["shift_table"]
        corruptions = [name for name in table if name != "clean"]
        return {"target": table[target][whose], "clean": table["clean"][whose],
                "robust": float(np.mean([table[name][whose] for name in corruptions]))}

    by = {(r["model"], r["seed"], r["method"]): r for r in tables}
    for method in dict.fromkeys(r["method"] for r in tables):
        mine = [r for r in tables if r["method"] == method]
        loss = np.mean([measures(r, "original")["clean"] - measures(r, "returned")["clean"] for r in mine])
        print(f"{method}: clean accuracy lost {loss:.2f} points (returned, {len(mine)} pairs)")
        figures[f"{target}_{method}_clean_loss_points"] = round(float(loss), 2)
        pairs = sorted({(m, s) for m, s, name in by if name == reference} & {(r["model"], r["seed"]) for r in mine})
        if method == reference or not pairs:
            continue
        for key in ("target", "robust", "clean"):
            differences = np.array([measures(by[(*p, reference)], "returned")[key]
                                    - measures(by[(*p, method)], "returned")[key] for p in pairs])
            print(f"  {reference} - {method} on {key}: mean {differences.mean():+.2f} ± "
                  f"{differences.std(ddof=1) if len(differences) > 1 else 0:.2f} over {len(pairs)} pairs")
            figures[f"{target}_{reference}_minus_{method}_{key}_points"] = round(float(differences.mean()), 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, METHODS, "0,1,2,3,4,5,6,7")
    args = parser.parse_args()
    rows, headline = rows_and_tables(args)
    methods = args.methods.split(",")
    for kind in args.models.split(","):
        print()
        headline |= keep_counts(rows, kind, methods)
        headline |= default_against(rows, kind)
        headline |= returned_changes(rows, kind, methods)
        headline |= budget_split(rows, kind)
    if args.corruption:
        headline |= shift_figures(rows)
    print_headline(headline)


if __name__ == "__main__":
    main()
