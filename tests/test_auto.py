"""``auto``: the scenario's candidates within one budget (an injected clock, never the wall clock),
the best option of each offered to the keep rule, the best validated that passes returned, every
candidate and every keep test in the report."""

import copy

import pytest
import torch

from archrepair.budget import Budget
from archrepair._repair import Candidate, Repairer, get_repairer, register_repairer
from archrepair._repair.methods.auto import AutoConfig, AutoRepair, CandidateSpec
from archrepair._repair.pipeline import run_repair


class FakeClock:
    """A clock that moves only when a method spends a step."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


CLOCK = FakeClock()


class Spender(Repairer):
    """Spends up to ``steps`` fake seconds (its own schedule; an epoch budget, when given, can only
    shorten it), one step a second, stopping at its deadline; its candidate scales the model's last
    layer by ``scale`` (so that candidates differ on validation) and moves its bias by ``shift`` per
    step (so that it is not the original)."""

    phases = ("train",)

    calls: dict[str, int] = {}

    def __init__(self, steps: int, scale: float, cost: float = 1.0, shift: float = 1e-4) -> None:
        super().__init__()
        self.steps, self.scale, self.cost, self.shift, self.epochs = steps, scale, cost, shift, None

    def set_phase_epochs(self, phase: str, epochs: int) -> None:
        self.epochs = epochs

    def train(self, task, deadline) -> Candidate:
        Spender.calls[self.name] = Spender.calls.get(self.name, 0) + 1
        spent = 0
        while spent < min(self.epochs or self.steps, self.steps) and not deadline.expired():
            CLOCK.now += self.cost
            spent += 1
        model = copy.deepcopy(task.model)
        with torch.no_grad():
            last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
            last.weight.mul_(self.scale)
            last.bias.add_(self.shift * spent)
        return Candidate(model, {"history": [{}] * spent, "deadline_at": deadline.at,
                                 "anneal_seconds": deadline.anneal_seconds}, {"train": spent * self.cost})


@pytest.fixture(autouse=True)
def spenders(monkeypatch):
    """The toy methods, registered for this module's tests only."""
    from archrepair._repair import registry

    monkeypatch.setattr(registry, "_METHODS", registry._METHODS.copy())
    for name, steps, scale, cost, shift in (("spend-6", 6, 1.0, 1.0, 1e-4), ("spend-1", 1, 1.0, 1.0, 1e-4),
                                            ("spend-6-sharper", 6, 3.0, 1.0, 1e-4), ("spend-1-cheap", 1, 1.0, 0.5, 1e-4),
                                            ("noop", 1, 1.0, 1.0, 0.0)):
        register_repairer(f"test-{name}", "test: spends fake seconds")(
            lambda settings, steps=steps, scale=scale, cost=cost, shift=shift: Spender(steps, scale, cost, shift))
    Spender.calls.clear()


def _auto(specs, budget: Budget, **config) -> AutoRepair:
    method = AutoRepair(AutoConfig(failures=specs, **config))
    method.apply_budget(budget)
    method.clock = CLOCK
    return method


@pytest.fixture
def task(digits_task_of):
    CLOCK.now = 0.0
    return digits_task_of(40, 400)


def test_each_candidate_s_best_option_goes_to_the_keep_rule_best_validated_first(task):
    specs = (CandidateSpec("plain", "test-spend-1"), CandidateSpec("sharper", "test-spend-6-sharper"))
    _, report = run_repair(_auto(specs, Budget(seconds=100), mixes=(), soup=False), task)
    details, keep = report["details"], report["keep"]
    ran = details["candidates"]
    assert [r["name"] for r in ran] == ["plain", "sharper"] and all(r["status"] == "ran" for r in ran)
    order = sorted(ran, key=lambda r: (r["val_accuracy"], -r["val_loss"]), reverse=True)
    assert [o["option"] for o in details["offered"]] == [r["name"] for r in order]
    assert [t["option"] for t in keep["tests"]] == [r["name"] for r in order]  # every option offered is tested
    returned = keep["chosen"] or order[0]["name"]  # none passed: the best validated is reported
    assert details["chosen"] == returned
    assert report["val_accuracy_repaired"] == next(r["val_accuracy"] for r in ran if r["name"] == returned)
    assert report["phase_seconds"] == {"plain": 1.0, "sharper": 6.0}
    assert keep["rule"] == "mcnemar" and keep["procedure"] == "holm"


def test_the_keep_rule_returns_a_passing_option_when_the_best_validated_one_fails(task, monkeypatch):
    """The options' keep-row answers are made up: the first (best validated) is no better than the
    original, the second clearly is; the second is returned with its own model and details."""
    import numpy as np

    from archrepair._repair import base

    first, second = Candidate(copy.deepcopy(task.model), {"who": "first"}, label="first"), \
        Candidate(copy.deepcopy(task.model), {"who": "second"}, label="second")
    answers = {id(task.model): np.array([True] * 900 + [False] * 100)}
    answers[id(first.model)] = answers[id(task.model)].copy()
    answers[id(second.model)] = np.array([True] * 900 + [True] * 60 + [False] * 40)
    monkeypatch.setattr(base, "keep_right", lambda task, model: answers[id(model)])
    result = base.keep_better("auto", task, [first, second])
    assert result.kept == "repaired" and result.model is second.model and result.details == {"who": "second"}
    assert [(t["option"], t["passed"], t["chosen"]) for t in result.keep["tests"]] == [
        ("first", False, False), ("second", True, True)]
    alone = base.keep_better("auto", task, [first])
    assert alone.kept == "original" and alone.details == {"who": "first"}  # the candidate reported whichever won


@pytest.mark.parametrize("best_scale, joins", [(2.2, True), (1.0, False)])
def test_a_soup_of_the_candidates_is_offered_only_when_the_average_validates_better(task, monkeypatch, best_scale,
                                                                                    joins):
    """Validation made up from the last layer's scale (the candidates scale it by 1 and 3, their
    average by 2): the soup is offered when scale 2.2 validates best, not when scale 1 does."""
    from archrepair._repair.methods import auto

    last = [m for m in task.model.modules() if isinstance(m, torch.nn.Linear)][-1].weight

    def figures(task, model, view=None):
        scale = float([m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1].weight.detach().norm() / last.detach().norm())
        return {"val_accuracy": 1 - abs(scale - best_scale) / 10, "val_loss": 0.0, "val_negative_flip_rate": 0.0}

    monkeypatch.setattr(auto, "validation_figures", figures)
    specs = (CandidateSpec("plain", "test-spend-1"), CandidateSpec("sharper", "test-spend-6-sharper"))
    details = _auto(specs, Budget(seconds=100), mixes=()).train(task, Budget(seconds=100).deadline(CLOCK)).details
    records = {r["name"]: r for r in details["candidates"]}
    offered = [o["option"] for o in details["offered"]]
    if joins:
        assert records["soup"]["members"] == ["sharper", "plain"]
        assert records["soup"]["val_accuracy"] == pytest.approx(0.98)
        assert offered[0] == "soup"
    else:
        assert "soup" not in records and "soup" not in offered and offered[0] == "plain"


def test_a_candidate_that_changed_no_weight_is_not_offered_and_says_so(task):
    specs = (CandidateSpec("nothing", "test-noop"), CandidateSpec("plain", "test-spend-1"))
    result = _auto(specs, Budget(seconds=100)).repair(task)
    records = {r["name"]: r for r in result.details["candidates"]}
    assert records["nothing"]["status"] == "ran: no weight changed, not offered"
    assert all(not o["option"].startswith("nothing") for o in result.details["offered"])
    assert all(not t["option"].startswith("nothing") for t in result.keep["tests"])
    assert "soup" not in records  # one changed candidate: nothing to average


def test_any_method_whose_candidate_changed_no_weight_says_so_in_a_note(task):
    result = get_repairer("test-noop").repair(task)
    assert any("the candidate is the original model: no weight changed" in note for note in result.details["notes"])
    assert result.kept == "original"
    changed = get_repairer("test-spend-1").repair(task)
    assert not any("no weight changed" in note for note in changed.details.get("notes", []))


def test_a_named_block_leaves_out_the_whole_network_candidates(task):
    from archrepair._repair import RepairSettings

    specs = (CandidateSpec("net", "network-gradient"), CandidateSpec("plain", "test-spend-1"))
    result = _auto(specs, Budget(seconds=100), settings=RepairSettings(block="block2")).repair(task)
    records = {r["name"]: r for r in result.details["candidates"]}
    assert records["net"]["status"] == "skipped: it trains the whole network and the block to repair is given (block2)"
    assert [o["option"].split(" α")[0] for o in result.details["offered"]] == ["plain"]


def test_the_average_of_models_is_their_mean_weights(digits_task_of):
    from archrepair._repair.methods.auto import average

    original = digits_task_of(40, 400).model
    shifted = copy.deepcopy(original)
    with torch.no_grad():
        for value in shifted.state_dict().values():
            value.add_(2.0) if value.is_floating_point() else value.add_(7)
    mixed = average([original, shifted]).state_dict()
    for name, value in original.state_dict().items():
        expected = value + 1.0 if value.is_floating_point() else value
        assert torch.allclose(mixed[name], expected, atol=1e-6) if value.is_floating_point() else torch.equal(
            mixed[name], expected), name


def test_the_candidates_share_the_time_budget_and_a_late_one_without_time_is_skipped(task):
    """The share queue (the default): each candidate its own schedule within an equal share of the
    time left when it starts; the search, which does not share, only with ``min_seconds`` left."""
    specs = (CandidateSpec("a", "test-spend-6"), CandidateSpec("b", "test-spend-6"), CandidateSpec("c", "test-spend-6"),
             CandidateSpec("search", "test-spend-6", shares=False, min_seconds=5.0))
    result = _auto(specs, Budget(seconds=10)).repair(task)
    records = {r["name"]: r for r in result.details["candidates"]}
    assert records["a"]["share_seconds"] == pytest.approx(10 / 3, abs=0.01)  # a third of 10 s
    assert [records[n]["seconds"] for n in "abc"] == [4.0, 3.0, 3.0]  # 4 steps pass 3.33 s; then 6/2, 3/1
    assert CLOCK.now == 10.0 and sum(result.phase_seconds.values()) == 10.0  # the whole budget, no more
    assert records["search"]["status"].startswith("skipped: 0.0 s of the budget left")


def test_a_candidate_s_share_follows_its_weight_among_those_still_to_train(task):
    specs = (CandidateSpec("a", "test-spend-6", share_weight=2.0), CandidateSpec("b", "test-spend-6"),
             CandidateSpec("c", "test-spend-6"))
    result = _auto(specs, Budget(seconds=8)).repair(task)
    records = {r["name"]: r for r in result.details["candidates"]}
    assert records["a"]["share_seconds"] == pytest.approx(4.0)  # 2 of 2 + 1 + 1 weights of 8 s
    assert records["b"]["share_seconds"] == pytest.approx(2.0) and records["c"]["share_seconds"] == pytest.approx(2.0)


def test_the_choice_after_training_fits_in_the_budget_too(task, monkeypatch):
    """Validation passes cost 0.5 fake seconds here: after the first one is timed, the shares leave
    room for every option's and soup trial's pass, so training and the choice end within 10 s."""
    from archrepair._repair.methods import auto

    def slow_figures(task, model, view=None):
        CLOCK.now += 0.5
        return {"val_accuracy": 0.5, "val_loss": 1.0, "val_negative_flip_rate": 0.0}

    monkeypatch.setattr(auto, "validation_figures", slow_figures)
    specs = (CandidateSpec("a", "test-spend-6"), CandidateSpec("b", "test-spend-6"))
    result = _auto(specs, Budget(seconds=10), mixes=(0.5,)).repair(task)
    a, b = result.details["candidates"][:2]
    assert a["share_seconds"] == pytest.approx(5.0) and b["share_seconds"] == pytest.approx(1.0)  # 4.5 left - 3.5
    assert 9.0 <= CLOCK.now <= 10.0


def test_a_candidate_s_schedule_anneals_over_its_share(task, monkeypatch):
    """Each single-phase candidate trains against a deadline whose annealing window is its share (a
    schedule cut by the share still ends at a low rate); ``anneal=False`` leaves schedules to their steps."""
    from archrepair._repair.methods import auto

    windows = {}
    chosen = auto.AutoRepair._offered

    def spy(option, run, shared):
        windows.update({name: done.candidate.details["anneal_seconds"] for name, done in run.trained.items()})
        return chosen(option, run, shared)

    monkeypatch.setattr(auto.AutoRepair, "_offered", staticmethod(spy))
    specs = (CandidateSpec("a", "test-spend-6"), CandidateSpec("b", "test-spend-6"))
    result = _auto(specs, Budget(seconds=10), mixes=()).repair(task)
    shares = {r["name"]: r["share_seconds"] for r in result.details["candidates"][:2]}
    assert windows == pytest.approx(shares) and shares["a"] == pytest.approx(5.0)
    CLOCK.now = 0.0
    _auto(specs, Budget(seconds=10), mixes=(), anneal=False).repair(task)
    assert windows == {"a": None, "b": None}


def test_on_a_field_set_the_choice_weighs_the_two_populations_alike():
    """Pooled, the home rows (most of the validation rows) decide; balanced, a candidate far better
    on the field rows wins unless it gives up as much at home."""
    pooled_better = {"val_accuracy": 0.95, "val_field_accuracy": 0.70, "val_home_accuracy": 0.99, "val_loss": 0.1,
                     "val_negative_flip_rate": 0.0}
    field_better = {"val_accuracy": 0.94, "val_field_accuracy": 0.80, "val_home_accuracy": 0.96, "val_loss": 0.1,
                    "val_negative_flip_rate": 0.0}
    balanced, pooled = AutoRepair(), AutoRepair(AutoConfig(balance_field=False))
    assert balanced._score(field_better) > balanced._score(pooled_better)
    assert pooled._score(pooled_better) > pooled._score(field_better)
    home_only = {"val_accuracy": 0.9, "val_loss": 0.2, "val_negative_flip_rate": 0.0}  # no field rows: pooled
    assert balanced._score(home_only) == pooled._score(home_only)


def test_time_a_candidate_does_not_use_goes_to_the_next(task):
    specs = (CandidateSpec("quick", "test-spend-1"), CandidateSpec("slow", "test-spend-6"))
    result = _auto(specs, Budget(seconds=10)).repair(task)
    quick, slow = result.details["candidates"]
    assert quick["seconds"] == 1.0 and slow["share_seconds"] == pytest.approx(9.0) and slow["seconds"] == 6.0


def test_an_epoch_budget_is_dealt_out_over_the_candidates_in_order(task):
    specs = tuple(CandidateSpec(n, "test-spend-6") for n in "abc")
    result = _auto(specs, Budget(epochs=5)).repair(task)
    assert [r["seconds"] for r in result.details["candidates"]] == [2.0, 2.0, 1.0]
    one = _auto(specs, Budget(epochs=1)).repair(task)
    assert [r["status"] for r in one.details["candidates"]] == ["ran", "skipped: no epoch of the budget left",
                                                              "skipped: no epoch of the budget left"]


def test_without_a_budget_every_candidate_runs_its_own_schedule_once(task):
    specs = (CandidateSpec("a", "test-spend-6"), CandidateSpec("b", "test-spend-1"))
    result = _auto(specs, Budget()).repair(task)
    assert [(r["epochs_given"], r["seconds"]) for r in result.details["candidates"][:2]] == [(None, 6.0), (None, 1.0)]


def test_a_shift_task_gets_the_shift_candidates_and_a_field_task_the_field_ones(task):
    from dataclasses import replace

    from archrepair._repair.methods.auto import FIELD_CANDIDATES
    from archrepair._repair.methods.train_more import TrainMore

    method = AutoRepair(AutoConfig(failures=(CandidateSpec("f", "test-spend-1"),),
                                   shift=(CandidateSpec("s", "test-spend-1"),),
                                   field_set=(CandidateSpec("d", "test-spend-1"),)))
    shifted = replace(task, config=replace(task.config, corruption={"name": "gaussian_noise", "severity": 3}))
    field = replace(task, split=replace(task.split, source="field"))
    assert [s.name for s in method.candidates(task)] == ["f"]
    assert [s.name for s in method.candidates(shifted)] == ["s"]
    assert [s.name for s in method.candidates(field)] == ["d"]
    # every default field candidate trains on the field's images: none of the "train more" methods
    assert not any(isinstance(get_repairer(spec.method), TrainMore) for spec in FIELD_CANDIDATES)


def test_the_default_candidates_run_on_a_real_task_within_the_budget(digits_task_of, tmp_path):
    """The registered default on the digits: each candidate's record (in report.md too), and the
    search skipped when the budget leaves it less than it needs."""
    method = get_repairer("auto", budget=Budget(seconds=30))
    result, report = run_repair(method, digits_task_of(40, 400), tmp_path / "out")
    names = [r["name"] for r in result.details["candidates"]]
    written = (tmp_path / "out" / "report.md").read_text()
    assert "## Candidates (returned or" in written and all(f"| {name} |" in written for name in names)
    defaults = [s.name for s in method.config.failures]
    assert names[:len(defaults)] == defaults and names[len(defaults):] in ([], ["soup"])
    assert result.details["scenario"] == "failures"
    for record in result.details["candidates"]:
        assert record["status"] == "ran" or record["status"].startswith("skipped")
        if record["status"] == "ran":
            assert 0 <= record["val_accuracy"] <= 1 and record["seconds"] >= 0
    assert result.details["chosen"] in names and result.keep["rule"] == "mcnemar"
    assert [t["option"] for t in result.keep["tests"]] == [o["option"] for o in result.details["offered"]]
    assert 1 <= len(result.keep["tests"]) <= method.config.keep_options


def test_a_candidate_s_failure_weight_reaches_the_cached_block_loader(digits_task_of):
    """The cached inputs draw batches through the task that built them, so the weight must be the
    task's own while the candidate trains (and the task's again after)."""
    from archrepair._repair.methods.auto import failure_weight

    task = digits_task_of(40, 400)
    view = task.block_view("block2")
    bound = view.bind(copy.deepcopy(task.model), lambda model: model.train())

    def rows_seen() -> list[int]:
        loader = bound.loader(task.fit_indices, 64, shuffle=True, with_rows=True)
        return [int(row) for batch in loader for row in batch[2]]

    failures = set(range(task.repair.num_failures))
    assert failures <= set(rows_seen())
    with failure_weight(task, 0.0):
        assert not failures & set(rows_seen())
    with failure_weight(task, 3.0):
        seen = rows_seen()
        assert sum(row in failures for row in seen) == 3 * len(task.fit_failures)
    assert task.config.fail_weight == 1.0 and failures <= set(rows_seen())


def test_a_resumed_run_keeps_its_finished_candidates_and_their_seconds(task, tmp_path):
    first = _auto((CandidateSpec("a", "test-spend-1-cheap"), CandidateSpec("b", "test-spend-6-sharper")),
                  Budget(seconds=10))
    first.work_dir = tmp_path / "work"
    done = first.repair(task)
    for folder in ("a", "b"):
        assert (tmp_path / "work" / folder / "candidate.pt").exists(), folder
    assert CLOCK.now == 6.5  # a: its one step of 0.5 s; b: its 6 steps within the 9.5 s left
    Spender.calls.clear()
    resumed = _auto((CandidateSpec("a", "test-spend-1-cheap"), CandidateSpec("b", "test-spend-6-sharper"),
                     CandidateSpec("c", "test-spend-6")), Budget(seconds=10))
    resumed.work_dir = tmp_path / "work"
    again = resumed.repair(task)
    records = again.details["candidates"]
    assert records[:2] == done.details["candidates"][:2]  # restored, not trained again
    assert Spender.calls.get("test-spend-1-cheap", 0) == Spender.calls.get("test-spend-6-sharper", 0) == 0
    assert records[2]["share_seconds"] == pytest.approx(3.5)  # the 6.5 s they used are spent
    if done.details["chosen"] in ("a", "b"):
        assert again.details["chosen"] in (done.details["chosen"], "c")
    for name, value in done.candidate.state_dict().items():
        if again.details["chosen"] == done.details["chosen"]:
            assert torch.equal(value, again.candidate.state_dict()[name])


def test_interpolation_runs_from_the_original_at_0_to_the_candidate_at_1(digits_task_of):
    from archrepair._repair.methods.auto import interpolate

    original = digits_task_of(40, 400).model
    candidate = copy.deepcopy(original)
    with torch.no_grad():
        for value in candidate.state_dict().values():
            value.add_(1.0) if value.is_floating_point() else value.add_(7)
    start, end = original.state_dict(), candidate.state_dict()
    for alpha in (0.0, 0.5, 1.0):
        mixed = interpolate(original, candidate, alpha).state_dict()
        for name, value in mixed.items():
            if value.is_floating_point():
                assert torch.allclose(value, start[name] + alpha, atol=1e-6), (name, alpha)
            else:
                assert torch.equal(value, end[name])  # a batch count is the candidate's
    assert all(torch.equal(v, start[k]) for k, v in original.state_dict().items())  # neither input changed
    assert all(torch.equal(v, end[k]) for k, v in candidate.state_dict().items())


def test_the_choice_weighs_negative_flips_and_the_interpolated_options(task):
    """α 0 is the original itself (no negative flip, its accuracy); the option chosen is the one
    with the highest accuracy − flip weight · negative flips among every recorded option."""
    specs = (CandidateSpec("plain", "test-spend-1"), CandidateSpec("sharper", "test-spend-6-sharper"))
    for flip_weight in (0.0, 100.0):
        method = AutoRepair(AutoConfig(failures=specs, flip_weight=flip_weight, mixes=(0.0, 0.5), soup=False))
        method.apply_budget(Budget(seconds=100))
        method.clock = CLOCK
        result = method.repair(task)
        records, original = result.details["candidates"], task.validate(task.model)[0]
        options = [(r["name"], 1.0, r) for r in records] + [(r["name"], m["alpha"], m) for r in records for m in r["mixes"]]
        for name, alpha, figures in options:
            assert original - figures["val_accuracy"] - 1e-9 <= figures["val_negative_flip_rate"] <= original
            if alpha == 0.0:
                assert figures["val_negative_flip_rate"] == 0 and figures["val_accuracy"] == original
        best = max(options, key=lambda o: (o[2]["val_accuracy"] - flip_weight * o[2]["val_negative_flip_rate"],
                                           -o[2]["val_loss"]))
        label = best[0] if best[1] == 1.0 else f"{best[0]} α {best[1]:g}"
        assert result.details["offered"][0]["option"] == label  # the best validated option is offered first
        if result.keep["chosen"] == label or result.keep["chosen"] is None:
            assert (result.details["chosen"], result.details["chosen_mix"]) == best[:2]
        assert result.details["flip_weight"] == flip_weight
