"""The paper's neuron-level baselines (Arachne, Apricot, MODE): properties that a wrong
implementation would fail."""

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from archrepair.budget import Budget
from archrepair.checkpoint import load_checkpoint
from archrepair._repair import TaskConfig, get_repairer, make_task
from archrepair._repair.methods.arachne import (
    Arachne, ArachneConfig, fitness_of, localise, pareto_front,
)
from archrepair.data.splits import stratified_sample
from archrepair._repair.pipeline import run_repair


def test_pareto_front_keeps_exactly_the_undominated_points():
    rng = np.random.default_rng(0)
    costs = rng.random((300, 2))
    front = set(pareto_front(costs).tolist())
    for index, point in enumerate(costs):
        dominated = np.any(np.all(costs >= point, 1) & np.any(costs > point, 1))
        assert (index in front) == (not dominated)


def test_stratified_sample_keeps_class_shares():
    rows = np.arange(1000)
    labels = np.repeat([0, 1, 2], [500, 300, 200])
    sample = stratified_sample(rows, labels, 100, seed=1)
    assert len(sample) == 100 and len(set(sample)) == 100
    assert np.bincount(labels[sample]).tolist() == [50, 30, 20]


def test_fitness_counts_correct_rows_and_weights_failures_by_alpha():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    labels = torch.tensor([0, 0, 0])
    negative = torch.tensor([False, False, True])
    loss = nn.functional.cross_entropy(logits[1:2], labels[1:2]).item()
    # positives: one correct + 1/(L+1) for the wrong one; the negative is right: alpha * 1
    assert fitness_of(logits, labels, negative, alpha=10.0) == pytest.approx(1 + 1 / (loss + 1) + 10.0, rel=1e-6)


def test_a_broken_output_weight_is_on_the_front_and_the_front_is_small():
    torch.manual_seed(0)
    classes, width = 10, 64
    labels = torch.arange(classes).repeat_interleave(60)
    inputs = torch.rand(len(labels), width) * 0.3
    inputs[torch.arange(len(labels)), labels] += 1.0  # feature c signals class c
    layer = nn.Linear(width, classes, bias=False)
    with torch.no_grad():
        layer.weight.copy_(0.05 * torch.randn(classes, width))
        layer.weight[torch.arange(classes), torch.arange(classes)] = 4.0
        layer.weight[3, 3] = -4.0  # the fault: class 3 is now always wrong
    wrong = layer(inputs).argmax(1) != labels
    assert wrong.sum() >= 55 and set(labels[wrong].tolist()) == {3}
    order = torch.cat([torch.nonzero(wrong).flatten(), torch.nonzero(~wrong).flatten()])
    features = SimpleNamespace(layer=layer, inputs=inputs[order], layer_inputs=inputs[order], forward=layer)
    positions, _ = localise(features, labels[order], int(wrong.sum()), seed=0)
    assert [3, 3] in positions.tolist()
    assert len(positions) <= 30


@pytest.mark.parametrize("search", ["de", "pso"])
def test_arachne_changes_only_front_weights_and_its_best_fitness_never_decreases(search, digits_task):
    repairer = Arachne(ArachneConfig(search=search, population=12, generations=15))
    candidate = repairer.train(digits_task, Budget().deadline())
    details = candidate.details
    curve = details["fitness"]
    assert all(later >= earlier for earlier, later in zip(curve, curve[1:]))
    positions = {tuple(p) for p in details["positions"]}
    before, after = digits_task.model.state_dict(), candidate.model.state_dict()
    for name, value in after.items():
        changed = torch.nonzero(value != before[name]).tolist()
        if name == f"{details['layer']}.weight":
            assert {tuple(index) for index in changed} <= positions and changed
        else:
            assert not changed, name
    assert details["prefix_cache"] == "on" and details["negatives"] >= 1
    assert 1 <= details["positives"] <= ArachneConfig().positives


def test_arachne_stops_at_the_deadline_and_refuses_a_convolution(digits_task):
    from archrepair.errors import ArchRepairError

    candidate = Arachne().train(digits_task, Budget(seconds=1e-6).deadline())
    assert candidate.details["stop_reason"] == "budget" and candidate.details["generations"] == 1
    conv = next(name for name, m in digits_task.model.named_modules() if isinstance(m, nn.Conv2d))
    with pytest.raises(ArchRepairError, match="patches nn.Linear"):
        Arachne(ArachneConfig(layer=conv)).train(digits_task, Budget().deadline())


def test_arachne_without_the_cache_gives_the_same_patch(digits_checkpoint, digits, digits_split, step_clock):
    """The same evolution on cached and uncached features: a budget of deadline checks (not of
    seconds, which a busy machine would spend on fewer generations in one run than the other)."""
    model, record = load_checkpoint(digits_checkpoint)
    split = digits_split(40)
    results = []
    for cache in (True, False):
        task = make_task(copy.deepcopy(model), record, digits, split, TaskConfig(train_examples=600, prefix_cache=cache))
        method = get_repairer("arachne", budget=Budget(seconds=25))
        method.clock = type(step_clock)()
        result, report = run_repair(method, task)
        results.append(result.details)
    on, off = results
    assert on["prefix_cache"] == "on" and off["prefix_cache"].startswith("off")
    assert on["positions"] == off["positions"]
    np.testing.assert_allclose(on["fitness"], off["fitness"], rtol=1e-5)


def test_apricot_adjustment_equals_the_formula_by_hand():
    from archrepair._repair.methods.apricot import adjust

    weights = torch.tensor([1.0, 2.0])
    reduced = torch.tensor([[0.0, 0.0], [4.0, 4.0], [2.0, -2.0]])
    correct = torch.tensor([True, False, True])
    mean_c, mean_i = torch.tensor([1.0, -1.0]), torch.tensor([4.0, 4.0])
    step = (2 / 3) * (weights - mean_c) - (1 / 3) * (weights - mean_i)
    torch.testing.assert_close(adjust(weights, reduced, correct, 0.1), weights - 0.1 * step)
    torch.testing.assert_close(adjust(weights, reduced, correct, 0.1, "replication"), weights + 0.1 * step)
    two = adjust(weights, reduced[:2], correct[:2], 1.0)  # p_C = p_I = 1/2: a step toward w̄_C, away from w̄_I
    torch.testing.assert_close(two, weights - 0.5 * (weights - reduced[0]) + 0.5 * (weights - reduced[1]))
    assert adjust(weights, reduced, torch.ones(3, dtype=torch.bool), 0.1) is None
    assert adjust(weights, reduced, torch.zeros(3, dtype=torch.bool), 0.1) is None


def test_apricot_restores_the_best_state_when_validation_drops(digits_task):
    from archrepair._repair.methods.apricot import Apricot, ApricotConfig
    from archrepair.train import TrainConfig

    config = ApricotConfig(reduced_models=3, eta=50.0, rounds=1, round_epochs=0, chunk=5,
                           train=TrainConfig(epochs=1, batch_size=64, lr=0.05))
    candidate = Apricot(config).train(digits_task, Budget().deadline())
    details = candidate.details
    assert details["adjusted"] >= 1 and details["restored"] >= 1 and details["kept"] == 0
    assert max(details["validation"][1:]) <= details["validation"][0]
    for name, value in candidate.model.named_parameters():  # every wrecking step was undone
        torch.testing.assert_close(value, dict(digits_task.model.named_parameters())[name], rtol=0, atol=1e-6)


def test_mode_differential_map_and_layer_choice_by_hand():
    from archrepair._repair.methods.mode import chosen_layer, differential_map

    features = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 4.0], [5.0, 5.0]])
    labels = np.array([1, 1, 1, 0, 0])
    predicted = np.array([1, 1, 0, 1, 0])  # rows 0-1 right, row 2 a false negative, row 3 a false positive
    torch.testing.assert_close(differential_map(features, labels, predicted, 1, overfitting=False),
                               torch.tensor([2.0, 0.0]) - torch.tensor([0.0, 4.0]))
    torch.testing.assert_close(differential_map(features, labels, predicted, 1, overfitting=True),
                               torch.tensor([0.0, 2.0]) - torch.tensor([2.0, 0.0]))
    accuracies = [np.array([0.2, 0.5]), np.array([0.4, 0.5]), np.array([0.9, 0.9])]
    assert chosen_layer(accuracies, 0, ["a", "b", "c"]) == "c"  # always improving: the last block
    assert chosen_layer(accuracies, 1, ["a", "b", "c"]) == "a"  # flat from the first block on


def test_mode_selects_inputs_more_similar_to_the_differential_map_than_a_random_draw(digits_task):
    from archrepair._repair.methods.mode import Mode, block_features, probe_accuracy, standardised
    from archrepair.models import default_blocks

    task, mode = digits_task, Mode()
    blocks = default_blocks(task.model)
    features = {b: standardised(v) for b, v in block_features(task.model, task, task.fit_indices, blocks).items()}
    labels = torch.as_tensor(task.repair.y[task.fit_indices], dtype=torch.long)
    accuracies = [probe_accuracy(features[b], labels, 10, 50, 0) for b in blocks]
    predicted = task.original_logits().argmax(1).numpy()
    failures = task.fit_indices[task.fit_indices < task.repair.num_failures]
    label = int(np.bincount(task.repair.y[failures]).argmax())
    plan = mode._plan(label, features, accuracies, blocks, task, predicted, batch=60)
    from archrepair._repair.methods.mode import differential_map

    position = {row: i for i, row in enumerate(task.fit_indices)}
    layer = features[plan["layer"]]
    direction = differential_map(layer, task.repair.y[task.fit_indices], predicted[task.fit_indices], label,
                                 plan["kind"] == "overfitting")
    score = lambda rows: float((layer[[position[r] for r in rows]] @ direction).mean())  # noqa: E731
    mine = task.fit_indices[task.repair.y[task.fit_indices] == label]
    rng = np.random.default_rng(0)
    random_scores = [score(rng.choice(mine, len(plan["chosen"]), replace=False)) for _ in range(200)]
    assert len(plan["chosen"]) == 30 and set(plan["chosen"]) <= set(mine)
    sign = 1 if plan["kind"] == "underfitting" else -1
    assert sign * score(plan["chosen"]) > max(sign * s for s in random_scores)


@pytest.mark.parametrize("name", ["arachne", "apricot", "mode"])
def test_each_neuron_level_method_stops_at_its_budget(name, digits_task, step_clock):
    method = get_repairer(name, budget=Budget(seconds=0.5))  # past it at the first check
    method.clock = step_clock
    result, report = run_repair(method, digits_task)
    assert any("spent at the first step" in note for note in result.details["notes"])  # said, not a normal row
    assert result.details["stop_reason"] == "budget"
    assert report["method"] == name and "image_passes" in result.details
