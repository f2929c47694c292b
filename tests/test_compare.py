"""The shared budget, the side-by-side comparison, its files and its statistics."""

import json

import pytest

from archrepair.budget import Budget
from archrepair.checkpoint import load_checkpoint
from archrepair._comparison import (
    Comparison,
    compare_methods,
    markdown_table,
    summarise,
    wilcoxon_against,
    write_comparison,
)
from archrepair._comparison.write import csv_rows
from archrepair.errors import ArchRepairError
from archrepair.plan import RepairPlan, prepare
from archrepair._repair import RepairSettings, TaskConfig, get_repairer, make_task
from archrepair._search import SearchConfig
from archrepair.train import TrainConfig

TINY = RepairSettings(block="block2", search=SearchConfig(epochs=1, warmup_epochs=0),
                      train=TrainConfig(epochs=1, batch_size=64, lr=0.01))


@pytest.fixture(scope="module")
def digits_problem(digits_checkpoint, digits_split):
    model, record = load_checkpoint(digits_checkpoint)
    return model, record, digits_split(10)


def _repair_on_a_step_clock(name, digits_problem, digits, step_clock, seconds: int, search_epochs: int, warmup: int,
                            epochs: int):
    """Method ``name`` on block2 of the digits model (600 training examples) under a budget of
    ``seconds`` deadline checks of ``step_clock``."""
    model, record, split = digits_problem
    task = make_task(model, record, digits, split, TaskConfig(train_examples=600))
    settings = RepairSettings(block="block2", search=SearchConfig(epochs=search_epochs, warmup_epochs=warmup),
                              train=TrainConfig(epochs=epochs, batch_size=32, lr=0.01, patience=None))
    method = get_repairer(name, settings, Budget(seconds=seconds))
    method.clock = step_clock
    return method.repair(task)


@pytest.mark.parametrize("name", ["archrepair", "block-gradient", "network-gradient"])
def test_a_method_that_would_exceed_its_time_budget_stops_at_it(name, digits_problem, digits, step_clock):
    """400 epochs asked for, a budget of 40 deadline checks (a clock that moves one second per
    reading): the run stops at the budget, a few checks after it (one step and one validation pass
    per phase), and trains far fewer epochs than the settings ask for."""
    result = _repair_on_a_step_clock(name, digits_problem, digits, step_clock, 40, search_epochs=400, warmup=0,
                                     epochs=400)
    assert step_clock.now <= 40 + 10  # the deadline, then at most a few more checks
    stops = [v for k, v in result.details.items() if k.endswith("stop_reason")]
    assert stops and stops[-1] == "budget"
    epochs = [len(v) for k, v in result.details.items() if k in ("history", "search", "finetune")]
    assert epochs and sum(epochs) <= 40  # far from the 400 asked for
    assert "notes" not in result.details  # it took many steps before the budget ran out


def test_the_epoch_budget_sets_every_method_s_passes():
    config = RepairSettings()
    search = get_repairer("archrepair", config, Budget(epochs=5)).config
    assert (search.search.epochs, search.finetune.epochs) == (2, 3)
    assert search.search.warmup_epochs <= 1
    assert get_repairer("network-gradient", config, Budget(epochs=5)).config.train.epochs == 5
    assert get_repairer("layer-gradient", config, Budget(epochs=5)).config.train.epochs == 5
    fixed = get_repairer("archrepair-fixed-arch", config, Budget(epochs=6)).config
    assert fixed.search.warmup_epochs == fixed.search.epochs == 3
    with pytest.raises(ArchRepairError, match="at least 2"):
        get_repairer("archrepair", config, Budget(epochs=1))
    with pytest.raises(ArchRepairError):
        Budget(seconds=0)


def _prepared(checkpoint, budget: Budget = Budget(epochs=2)):
    """The plan every comparison here starts from: 10 failures of the digits model, TINY settings, 200
    training examples."""
    return prepare(RepairPlan(checkpoint, "archrepair", TINY, budget, TaskConfig(train_examples=200), count=10))


@pytest.fixture(scope="module")
def comparison(digits_checkpoint):
    return compare_methods(_prepared(digits_checkpoint), ["archrepair", "network-gradient"], [0, 1])


def test_comparison_runs_every_method_on_every_seed_on_the_same_examples(comparison):
    assert [(r.method, r.seed) for r in comparison.rows] == [
        ("archrepair", 0), ("network-gradient", 0), ("archrepair", 1), ("network-gradient", 1)]
    assert len({r.accuracy_before for r in comparison.rows}) == 1  # the same examples before every repair
    seeds = {r.seed: r.repair_train_indices for r in comparison.rows if r.method == "archrepair"}
    assert seeds[0] != seeds[1]  # each seed draws its own D_repair sample
    for row in comparison.rows:
        assert row.change_points == pytest.approx(100 * (row.accuracy_after - row.accuracy_before), abs=1e-3)
    assert len(comparison.failures["fail_indices"]) == 10 and comparison.versions["torch"]


def test_comparison_round_trips_from_json_and_every_file_derives_from_it(comparison, tmp_path):
    paths = write_comparison(comparison, tmp_path)
    reread = Comparison.from_json(paths["json"].read_text())
    assert reread == comparison
    assert paths["markdown"].read_text() == markdown_table(reread)
    assert paths["csv"].read_text() == csv_rows(reread)
    assert paths["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(paths["csv"].read_text().splitlines()) == 1 + len(comparison.rows)
    with pytest.raises(ValueError, match="not a comparison"):
        Comparison.from_json(json.dumps({**json.loads(paths["json"].read_text()), "extra": 1}))


def test_summary_means_and_wilcoxon_by_hand(comparison):
    rows = {(r.method, r.seed): r for r in comparison.rows}
    entry = next(e for e in summarise(comparison) if e["method"] == "network-gradient")
    changes = [rows[("network-gradient", s)].change_points for s in (0, 1)]
    assert entry["change_points"] == pytest.approx(sum(changes) / 2)
    assert entry["runs"] == 2


def test_wilcoxon_is_the_exact_signed_rank_test():
    from dataclasses import replace

    from archrepair._comparison import ComparisonRow

    def row(method, seed, change):
        return ComparisonRow(method, seed, 0.9, 0.9 + change / 100, change, 0.5, 0, 0, 1.0, 10, 10, "repaired")

    base = [row("archrepair", s, 1.0 + s) for s in range(5)]
    worse = [row("finetune", s, -1.0 - s) for s in range(5)]
    same = [replace(r, method="twin") for r in base]
    comparison = Comparison(base + worse + same, ["archrepair", "finetune", "twin"], list(range(5)), {}, {}, None, None,
                            {}, {"fail_indices": []}, {})
    p = wilcoxon_against(comparison)
    assert p["finetune"] == pytest.approx(2 / 2**5)  # all five differences positive: the smallest exact p-value
    assert p["twin"] == 1.0


def test_compare_command_writes_every_file(cli, digits_checkpoint, tmp_path):
    out = tmp_path / "cmp"
    status, stdout, stderr = cli("compare", digits_checkpoint, "--methods", "archrepair,block-gradient", "--seeds", "2",
                                 "--budget-epochs", "2", "--count", "10", "--train-examples", "200", "--block", "block2",
                                 "--search-epochs", "1", "--warmup-epochs", "0", "--out", out, "--json")
    assert status == 0, stderr
    runs = [line for line in stderr.splitlines() if line.startswith("seed ")]  # progress on stderr despite --json
    assert len(runs) == 4 and all(": hold-out " in line and "negative flips" in line for line in runs)
    result = json.loads(stdout)
    assert [e["method"] for e in result["summary"]] == ["archrepair", "block-gradient"]
    assert all(e["runs"] == 2 for e in result["summary"])
    assert {p.name for p in out.iterdir()} == {"comparison.json", "comparison.md", "comparison.csv", "comparison.png"}
    assert Comparison.from_json((out / "comparison.json").read_text()).budget == {"epochs": 2, "seconds": None}


def test_compare_command_rejects_an_unknown_method(cli, digits_checkpoint, tmp_path):
    status, _, stderr = cli("compare", digits_checkpoint, "--methods", "archrepair,magic", "--out", tmp_path / "x")
    assert status == 1 and "unknown repair method 'magic'" in stderr


def test_an_interrupted_comparison_resumes_with_its_finished_runs(digits_checkpoint, tmp_path):
    args = (_prepared(digits_checkpoint), ["archrepair", "block-gradient"], [0, 1])
    full = compare_methods(*args)
    interrupted = Comparison.from_json(full.to_json())
    interrupted.rows = interrupted.rows[:3]  # the last run (block-gradient, seed 1) did not finish
    ran = []
    resumed = compare_methods(*args, previous=interrupted, on_row=lambda row, _: ran.append(row))
    assert [(r.method, r.seed) for r in resumed.rows] == [(r.method, r.seed) for r in full.rows]
    assert resumed.rows[:3] == interrupted.rows  # kept as they were
    assert resumed.rows[3].change_points == full.rows[3].change_points  # the missing run, seeded alike
    other = Comparison.from_json(full.to_json())
    other.budget = {"epochs": 9, "seconds": None}
    with pytest.raises(ArchRepairError, match="another budget"):
        compare_methods(*args, previous=other)


def test_compare_command_keeps_an_existing_comparison_unless_resumed(cli, digits_checkpoint, tmp_path):
    out = tmp_path / "cmp"
    common = ("compare", digits_checkpoint, "--methods", "block-gradient", "--seeds", "1", "--budget-epochs", "1",
              "--count", "10", "--train-examples", "200", "--out", out)
    assert cli(*common)[0] == 0
    status, _, stderr = cli(*common)
    assert status == 1 and "--resume" in stderr
    assert cli(*common, "--resume")[0] == 0


def test_every_row_records_the_keep_rule_and_the_files_show_both_rules(comparison, tmp_path):
    import csv

    for row in comparison.rows:
        keep = row.keep
        assert keep["rule"] == "mcnemar" and row.kept == keep["decision"] and keep["decision_old_rule"] in (
            "repaired", "original")
        assert keep["candidate_only_right"] >= 0 and 0 <= keep["p_value"] <= 1
    paths = write_comparison(comparison, tmp_path)
    table = list(csv.DictReader(paths["csv"].read_text().splitlines()))
    assert [r["kept_old_rule"] for r in table] == [r.keep["decision_old_rule"] for r in comparison.rows]
    assert [float(r["keep_p_value"]) for r in table] == [r.keep["p_value"] for r in comparison.rows]
    entry = next(e for e in summarise(comparison) if e["method"] == "archrepair")
    old = sum(r.keep["decision_old_rule"] == "repaired" for r in comparison.rows_of("archrepair"))
    assert entry["kept_repaired_old_rule"] == old and "kept by the old rule" in paths["markdown"].read_text()


def test_a_budget_spent_at_the_first_step_is_said_in_the_row(cli, digits_checkpoint, tmp_path):
    status, _, err = cli("compare", digits_checkpoint, "--methods", "block-gradient", "--seeds", "1", "--count", "10",
                         "--train-examples", "100", "--budget-seconds", "0.001", "--out", tmp_path / "c")
    assert status == 0
    row = json.loads((tmp_path / "c" / "comparison.json").read_text())["rows"][0]
    assert any("spent at the first step" in note for note in row["notes"]) and "note: the budget" in err


@pytest.mark.parametrize("name", ["archrepair", "archrepair-fixed-arch"])
def test_a_search_stopped_in_its_warm_up_says_it_took_no_architecture_step(name, digits_problem, digits, step_clock):
    """A budget that ends the search inside its warm-up epochs: ArchRepair says, in one note, that
    the architecture was never searched; fixed-arch never searches it by design and says nothing."""
    result = _repair_on_a_step_clock(name, digits_problem, digits, step_clock, 12, search_epochs=6, warmup=3, epochs=2)
    assert len(result.details["search"]) <= 3  # stopped within the warm-up
    notes = [note for note in result.details.get("notes", []) if "no architecture step" in note]
    assert len(notes) == (1 if name == "archrepair" else 0)
