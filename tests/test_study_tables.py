"""The study report's analogues of the paper's tables (#30), on stores of made-up rows: each number
in the text is recomputed here from the rows, and rows of one method run under other settings are
reported apart."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from archrepair.study import Store, write_report
from archrepair.study.spec import Run

CORRUPTIONS = ["gaussian_noise", "shot_noise", "contrast"]


def _store(tmp_path, rows: list[tuple[str, str, str, int, dict, dict]]) -> Store:
    """A store of imported rows ``(model, scenario, method, seed, settings, figures)``."""
    store = Store(tmp_path / "made.sqlite")
    runs = [Run(model, scenario, method, seed, {"model": model, "scenario": scenario, "method": method, "seed": seed,
                                                "settings": settings}) for model, scenario, method, seed, settings, _ in rows]
    store.add(runs, [(figures, 10.0) for *_, figures in rows])
    return store


def _report(tmp_path, rows) -> str:
    _store(tmp_path, rows).close()
    write_report(tmp_path / "made.sqlite", tmp_path / "report")
    return (tmp_path / "report" / "report.md").read_text()


def _figures(change: float, candidate: float | None = None, **more) -> dict:
    return {"holdout_change_points": change, "candidate_holdout_change_points": change if candidate is None else candidate,
            "holdout_negative_flip_rate": 0.01, "candidate_holdout_negative_flip_rate": 0.01,
            "candidate_holdout_unseen_fix_rate": 0.2, "kept": "repaired"} | more


def test_the_localisation_table_ranks_blocks_against_the_localisers_counts(tmp_path):
    rng = np.random.default_rng(0)
    blocks = ["layer1", "layer2", "layer3", "layer4"]
    rows, changes, counts = [], {}, {}
    for seed in range(3):
        counts[seed] = {block: {"top10": int(rng.integers(0, 10)), "top50": int(rng.integers(0, 50))} for block in blocks}
        chosen = max(blocks, key=lambda block: counts[seed][block]["top10"])
        localization = {"chosen": chosen, "criterion": "reweighted",
                        "blocks": {block: {"vulnerable": counts[seed][block], "mean_score": 0.1} for block in blocks}}
        for block in blocks:
            changes[seed, block] = float(np.round(rng.normal(), 2))
            rows.append(("r18", "test", f"archrepair@{block}", seed, {},
                         _figures(0.0, changes[seed, block], block=block, localization=localization)))
    text = _report(tmp_path, rows)
    best = {seed: max(blocks, key=lambda block: changes[seed, block]) for seed in range(3)}
    chosen = {seed: max(blocks, key=lambda block: counts[seed][block]["top10"]) for seed in range(3)}
    agree = sum(best[seed] == chosen[seed] for seed in range(3))
    assert f"best repaired block on {agree}/3 seeds" in text
    for level in ("top10", "top50"):
        rho = np.mean([spearmanr([counts[s][b][level] for b in blocks], [changes[s, b] for b in blocks]).statistic
                       for s in range(3)])
        assert f"{level} {rho:+.2f}" in text, level
    values = np.array([changes[seed, "layer2"] for seed in range(3)])
    mean_counts = [np.mean([counts[seed]["layer2"][level] for seed in range(3)]) for level in ("top10", "top50")]
    chosen_count = sum(chosen[seed] == "layer2" for seed in range(3))
    assert (f"| layer2 | 3 | {values.mean():+.2f} ± {values.std(ddof=1):.2f} | +0.00 ± 0.00 | {chosen_count}/3 | "
            f"{mean_counts[0]:.1f} | {mean_counts[1]:.1f} |") in text
    assert (f"| RQ3: localisation | the localised block is always the best block to repair | r18, test: the localised "
            f"block was the best repaired block on {agree}/3 seeds | 1 cell, 3 seeds | — | "
            f"{'agrees' if agree == 3 else 'disagrees'} |") in text


def test_the_corruption_table_is_the_mean_over_runs_of_target_others_clean_and_robust(tmp_path):
    rng = np.random.default_rng(1)
    rows, tables = [], {}
    for method in ("augmix", "archrepair"):
        for seed in range(2):
            table = {name: {who: float(np.round(rng.uniform(50, 90), 2)) for who in ("original", "returned", "candidate")}
                     for name in ["clean", *CORRUPTIONS]}
            tables[method, seed] = table
            rows.append(("vgg", "gaussian_noise-3", method, seed, {}, _figures(1.0, shift_table=table)))
    text = _report(tmp_path, rows)
    for method in ("augmix", "archrepair"):
        mine = [tables[method, seed] for seed in range(2)]
        target = np.mean([t["gaussian_noise"]["returned"] for t in mine])
        others = np.mean([np.mean([t[n]["returned"] for n in CORRUPTIONS[1:]]) for t in mine])
        clean = np.mean([t["clean"]["returned"] for t in mine])
        robust = np.mean([np.mean([t[n]["returned"] for n in CORRUPTIONS]) for t in mine])
        before = np.mean([np.mean([t[n]["original"] for n in CORRUPTIONS]) for t in mine])
        assert (f"| `{method}` | 2 | {target:.2f} | {others:.2f} | {clean:.2f} | {robust:.2f} | {robust - before:+.2f} |"
                in text), method
    assert (tmp_path / "report" / "corruptions.png").is_file()
    assert "| RQ2: robust accuracy after a corruption repair (change, points) |" in text


def test_levels_and_block_versus_layer_tables_show_each_method_and_the_papers_figure(tmp_path):
    rows = []
    for seed, (neuron, network, block, layer) in enumerate([(0.1, 0.5, 1.0, 0.2), (0.3, 0.9, 2.0, 0.4)]):
        rows += [("r18", "test", "neuron-gradient", seed, {}, _figures(neuron)),
                 ("r18", "test", "network-gradient", seed, {}, _figures(network)),
                 ("r18", "test", "archrepair", seed, {}, _figures(0.0, block)),
                 ("r18", "test", "archrepair-layer", seed, {}, _figures(0.0, layer))]
    text = _report(tmp_path, rows)
    assert "| neuron | 2 | +0.20 ± 0.14 | +0.20 ± 0.14 | 10 | +0.18 | 650 |" in text
    assert "| network | 2 | +0.70 ± 0.28 | +0.70 ± 0.28 | 10 | +0.73 | 1457 |" in text
    assert "| r18 | test | +1.50 ± 0.71 (2) | +0.30 ± 0.14 (2) | — |" in text
    # RQ4: the block ahead of the layer on both seeds (differences +0.8, +1.6: exact two-sided p 0.5)
    assert ("| RQ4: components (candidate change, points) | the block better than one layer on every model | "
            "r18, test: block +1.50, layer +0.30 | 1 cell, 2 seeds | 0.5 | agrees |") in text
    # RQ1 on the repaired models: ArchRepair +1.50 against network-gradient's +0.70 (ahead on both seeds)
    assert ("| RQ1: repair of test-set failures (candidate hold-out change, points) | ArchRepair first on every model "
            "(ResNet-18 +3.53, VGG-16 +1.86, DenseNet-121 +3.39 on CIFAR-10) | r18: ArchRepair +1.50, best other method "
            "`network-gradient` +0.70; ArchRepair leads on 1/1 models | 1 cell, 2 seeds | 0.5 | agrees |") in text


def test_rq1_puts_the_papers_figure_of_each_family_beside_the_measured_one(tmp_path):
    rows = []
    for seed in range(2):
        for model in ("densenet121-undertrained", "resnet18-converged", "resnet18-undertrained"):
            rows += [(model, "test", "archrepair", seed, {}, _figures(0.0, 1.0 + seed)),
                     (model, "test", "apricot", seed, {}, _figures(2.0))]
    text = _report(tmp_path, rows)
    # the claim names the families measured here, each once, in the order of the cells
    assert "| ArchRepair first on every model (DenseNet-121 +3.39, ResNet-18 +3.53 on CIFAR-10) |" in text
    assert ("densenet121-undertrained: ArchRepair +1.50 (the paper's DenseNet-121: +3.39), best other method "
            "`apricot` +2.00") in text
    assert ("The paper (Table 5, DenseNet-121 on CIFAR-10, 200-epoch full-width models, test set without `D_fail`): "
            "87.97% → ArchRepair 91.36% (+3.39).") in text


def test_the_search_section_names_each_runs_block_and_kept_edges(tmp_path):
    own = {"edges": [{"op": "original", "source": 0, "target": 1}, {"op": "original", "source": 1, "target": 2}]}
    new = {"edges": [{"op": "sep_conv_3x3", "source": 0, "target": 1}, {"op": "original", "source": 1, "target": 2}]}
    rows = [("d121", "test", "archrepair", 0, {}, _figures(0.0, 1.25, block="dense4.3.layers", genotype=own)),
            ("d121", "test", "archrepair", 1, {}, _figures(0.0, -0.5, block="dense3.7.layers", genotype=new)),
            ("d121", "test", "archrepair", 2, {}, _figures(0.0, 0.75, block="dense4.3.layers", genotype=own)),
            ("d121", "test", "archrepair", 3, {}, _figures(0.0, 0.25, genotype=own)),  # no block recorded
            ("d121", "test", "apricot", 0, {}, _figures(2.0))]
    section = _report(tmp_path, rows).split("## What the search built")[1].split("\n## ")[0]
    assert "| 0 | dense4.3.layers | 0→1 original, 1→2 original | +1.25 |" in section
    assert "| 1 | dense3.7.layers | 0→1 sep_conv_3x3, 1→2 original | -0.50 |" in section
    assert "| 3 | — | 0→1 original, 1→2 original | +0.25 |" in section
    assert ("Blocks chosen: dense3.7.layers 1/4, dense4.3.layers 2/4, — 1/4; every kept edge the block's own "
            "operation in 3/4 runs.") in section
    assert "apricot" not in section


def test_rows_of_one_method_under_other_settings_are_reported_apart_the_newest_by_its_name(tmp_path):
    rows = [("r18", "test", "archrepair", seed, {"budget_seconds": 60.0}, _figures(1.0)) for seed in range(2)]
    rows += [("r18", "test", "archrepair", seed, {"budget_seconds": 120.0, "keep_level": 0.05}, _figures(3.0))
             for seed in range(2)]
    text = _report(tmp_path, rows)
    cell, appendix = text.split("## Appendix: rows made under other settings")
    assert "| `archrepair` | 2 | +3.00 ± 0.00 |" in cell  # the newest variant, in the cell's table
    assert "[budget_seconds" not in cell.split("### r18, test")[1].split("\n## ")[0]  # no other settings beside it
    assert "| `archrepair [budget_seconds 60.0, keep_level none]` | 2 | +1.00 ± 0.00 |" in appendix


@pytest.mark.parametrize("broken, message", [("{not json\n", "is not a JSON-lines file"),
                                             (json.dumps({"hash": "x", "config": {}, "status": "done"}) + "\n",
                                              "each line needs")])
def test_a_broken_export_is_refused_in_one_line(cli, tmp_path, broken, message):
    path = tmp_path / "export.jsonl"
    path.write_text(broken)
    status_code, _, stderr = cli("study", "import", tmp_path / "s.sqlite", "--rows", path)
    assert status_code == 1 and len(stderr.strip().splitlines()) == 1 and message in stderr, stderr


def _done(tmp_path, rows: list[tuple[str, str, str, int, dict]]) -> str:
    """The report of a store of rows run in it (``done``): ``(model, scenario, method, seed, figures)``."""
    store = Store(tmp_path / "done.sqlite")
    exported = []
    for model, scenario, method, seed, figures in rows:
        config = {"model": model, "scenario": scenario, "method": method, "seed": seed, "method_version": 1}
        exported.append({"hash": Run(model, scenario, method, seed, config).hash, "model": model, "scenario": scenario,
                         "method": method, "seed": seed, "config": config, "status": "done", "figures": figures,
                         "seconds": 100.0, "code_version": "x", "environment": {}, "error": None, "note": None,
                         "attempts": 1, "completions": 1})
    store.restore(exported)
    store.close()
    write_report(tmp_path / "done.sqlite", tmp_path / "report")
    return (tmp_path / "report" / "report.md").read_text()


def test_the_default_is_set_against_the_best_rival_with_all_its_seeds_and_its_choices_are_counted(tmp_path):
    rng = np.random.default_rng(1)
    auto = {seed: float(np.round(rng.normal(2, 0.5), 2)) for seed in range(6)}
    auto[5] = -0.5  # one harmful returned model
    rivals = {"train-more-block": {s: float(np.round(rng.normal(2, 0.5), 2)) for s in range(6)},
              "block-gradient": {s: float(np.round(rng.normal(1, 0.5), 2)) for s in range(6)},
              "apricot": {s: 9.0 for s in range(5)}}  # best of all, but one seed short: not a rival
    rows = []
    for seed, change in auto.items():
        chosen = "soup" if seed % 2 else None
        tests = [{"option": "soup", "p_value": 0.001, "passed": bool(chosen), "chosen": bool(chosen)},
                 {"option": "archrepair+distill", "p_value": 0.3, "passed": False, "chosen": False}]
        keep = {"chosen": chosen, "decision": "repaired" if chosen else "original", "tests": tests,
                "candidate_only_right": 50, "original_only_right": 20, "p_value": 0.001}
        choice = {"candidates": [{"name": "soup", "method": "average", "status": "ran"},
                                 {"name": "archrepair+distill", "method": "archrepair", "status": "ran", "seconds": 40.0},
                                 {"name": "train-more-block", "method": "train-more-block", "status": "ran",
                                  "seconds": 20.0 + seed}]}
        rows.append(("r18", "test", "auto", seed, _figures(change, keep=keep, choice=choice)))
    for method, changes in rivals.items():
        rows += [("r18", "test", method, seed, _figures(change)) for seed, change in changes.items()]
    text = _done(tmp_path, rows)
    mine = np.array([auto[s] for s in range(6)])
    best = np.array([rivals["train-more-block"][s] for s in range(6)])
    if best.mean() < np.mean(list(rivals["block-gradient"].values())):
        best = np.array([rivals["block-gradient"][s] for s in range(6)])
    name = "train-more-block" if best.tolist() == [rivals["train-more-block"][s] for s in range(6)] else "block-gradient"
    line = next(line for line in text.splitlines() if line.startswith("| r18, test | 6 |"))
    assert f"| `{name}` |" in line and "apricot" not in line
    gap, ahead = mine.mean() - best.mean(), int((best > mine).sum())
    holds = "yes" if gap >= -0.3 and ahead <= 6 * 5 / 8 else "no"
    assert f"| {gap:+.2f} | {ahead}/6 | {holds} | 1 |" in line
    assert "r18, test, seed 5: -0.50 (keep rows: option alone right 50, original alone 20" in text
    choices = next(line for line in text.splitlines() if line.startswith("| r18, test | 6 | "))
    assert any(line.startswith("| r18, test | 6 | original 3, soup 3 | 0.5 | archrepair+distill 40, train-more-block 22"
                               " | 6/6 | 0 |") for line in text.splitlines()), choices


def _default_cell(default: list[float], rival: list[float], field: bool = False):
    """One (model, scenario) group: ``auto`` and one rival with the given returned changes on seeds 0.."""
    from archrepair.study.report import MethodFigures
    from archrepair.study.store import StoredRun

    def runs(method: str, changes: list[float]) -> list:
        return [StoredRun(f"{method}{seed}", seed, "m", "s", method, seed,
                          {"field": "f.npz" if field else None, "method_version": 9},
                          "done", {"holdout_change_points": change, "keep": {}}, 1.0, None, None, None, None, 1, 1,
                          None, None, None, None)
                for seed, change in enumerate(changes)]

    return {("m", "s"): [MethodFigures("auto", runs("auto", default)), MethodFigures("rival", runs("rival", rival))]}


@pytest.mark.parametrize("default, rival, field, holds", [
    ([1.0] * 8, [1.2] * 8, False, "no"),               # trails by 0.2 but behind on 8 of 8 seeds
    ([1.0] * 4 + [1.4] * 4, [1.3] * 8, False, "yes"),  # gap -0.1, rival ahead on 4 of 8
    ([1.0] * 3 + [2.0] * 5, [2.0] * 3 + [1.7] * 5, False, "yes"),
    ([0.0] * 2 + [1.0] * 6, [1.0] * 2 + [1.5] * 6, False, "no"),   # gap -0.625 > 0.3
    ([0.0] * 2 + [1.0] * 6, [1.0] * 2 + [1.15] * 6, True, "no"),   # field: gap -0.36 within 0.5 but ahead 8/8
    ([1.0] * 8, [2.8] * 2 + [0.9] * 6, True, "yes"),   # field: gap -0.375 within 0.5, ahead on 2 of 8
    ([1.0] * 8, [2.8] * 2 + [0.9] * 6, False, "no"),   # the same on test failures: beyond 0.3
])
def test_the_default_section_says_whether_the_default_holds_in_each_cell(default, rival, field, holds):
    from archrepair.study.default_method import default_section

    (row,) = [line for line in default_section(_default_cell(default, rival, field), "auto") if line.startswith("| m, s")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    gap, ahead = float(cells[6]), int(cells[7].split("/")[0])
    assert cells[3] == "v9"  # which version of the default the row is
    assert gap == pytest.approx(np.mean(default) - np.mean(rival), abs=0.006)
    assert ahead == sum(r > d for d, r in zip(default, rival))
    assert cells[8] == ("yes" if gap >= -(0.5 if field else 0.3) - 1e-9 and ahead <= 5 else "no") == holds


def test_the_choice_section_counts_what_the_default_returned_and_whether_the_search_trained_and_won():
    from archrepair.study.default_method import choices_section
    from archrepair.study.report import MethodFigures
    from archrepair.study.store import StoredRun

    candidates = [{"name": "block-gradient", "method": "block-gradient", "status": "ran", "seconds": 40.0},
                  {"name": "archrepair+distill", "method": "archrepair", "status": "ran", "seconds": 60.0}]
    keeps = [{"chosen": "archrepair+distill", "decision": "repaired", "tests": [{"passed": True}, {"passed": True}]},
             {"chosen": None, "decision": "original", "tests": [{"passed": False}, {"passed": False}]},
             {"chosen": "block-gradient", "decision": "repaired", "tests": [{"passed": True}, {"passed": False}]}]
    runs = [StoredRun(f"h{seed}", seed, "m", "s", "auto", seed, {}, "done",
                      {"keep": keep, "choice": {"candidates": candidates[:1] if seed == 2 else candidates}},
                      1.0, None, None, None, None, 1, 1, None, None, None, None) for seed, keep in enumerate(keeps)]
    (row,) = [line for line in choices_section({("m", "s"): [MethodFigures("auto", runs)]}, "auto")
              if line.startswith("| m, s")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "3" and cells[2] == "archrepair+distill 1, block-gradient 1, original 1"
    assert cells[3] == "1.0"                       # options passed: 2, 0, 1
    assert cells[4] == "block-gradient 40, archrepair+distill 60"
    assert (cells[5], cells[6]) == ("2/3", "1")    # the search trained in two runs and was returned in one


def test_an_older_version_goes_to_the_appendix_while_the_new_one_s_rows_are_still_pending(tmp_path):
    """The default's table must never show an older version as the default: the newer version's rows,
    pending, already make the older ones another variant."""
    store = Store(tmp_path / "s.sqlite")
    exported = []
    for version, status in ((1, "done"), (9, "pending")):
        for seed in range(2):
            config = {"model": "r18", "scenario": "test", "method": "auto", "seed": seed, "method_version": version}
            exported.append({"hash": Run("r18", "test", "auto", seed, config).hash, "model": "r18", "scenario": "test",
                             "method": "auto", "seed": seed, "config": config, "status": status,
                             "figures": _figures(1.5) if status == "done" else None, "seconds": 100.0,
                             "code_version": "x", "environment": {}, "error": None, "note": None, "attempts": 1,
                             "completions": 1})
    store.restore(exported)
    store.close()
    write_report(tmp_path / "s.sqlite", tmp_path / "report")
    cells, appendix = (tmp_path / "report" / "report.md").read_text().split("## Appendix: rows made under other settings")
    assert "| `auto [method_version 1]` | 2 | +1.50 ± 0.00 |" in appendix
    assert "| `auto` |" not in cells


def test_a_field_set_moved_elsewhere_is_the_same_variant_and_other_contents_are_not():
    from archrepair.study.store import StoredRun
    from archrepair.study.variants import variant_labels

    def run(seed: int, path: str, fingerprint: str) -> StoredRun:
        config = {"field": path, "field_fingerprint": fingerprint, "budget": {"seconds": 60}}
        return StoredRun(f"h{seed}{fingerprint}", seed, "m", "field", "auto", seed, config, "done", {}, 1.0,
                         None, None, None, None, 1, 1, None, None, None, None)

    same = [run(0, "/one/machine/field.npz", "abc"), run(1, "/another/place/field.npz", "abc")]
    assert set(variant_labels(same).values()) == {"auto"}
    other = variant_labels([*same, run(2, "/one/machine/field.npz", "def")])  # other images: another variant
    assert other["h2def"] == "auto" and other["h0abc"] == other["h1abc"] == "auto [field_fingerprint abc]"
