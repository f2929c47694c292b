"""The paper's data-level baselines (DeepRepair, SENSEI, the Few-Shot reconstruction) and the
references AugMix and BatchNorm adaptation: properties that a wrong implementation would fail."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from archrepair.budget import Budget
from archrepair._repair import get_repairer
from archrepair._repair.augment import OPS, apply_ops, augmix, jensen_shannon, mix, style_transfer
from archrepair._repair.pipeline import run_repair


def test_jsd_loss_equals_the_formula_by_hand():
    torch.manual_seed(0)
    logits = torch.randn(3 * 4, 5)
    p = [torch.softmax(part, 1) for part in logits.chunk(3)]
    m = sum(p) / 3
    by_hand = sum((q * (q.log() - m.log())).sum(1).mean() for q in p) / 3
    torch.testing.assert_close(jensen_shannon(logits), by_hand, rtol=1e-5, atol=1e-6)
    labels = torch.randint(0, 5, (4,))
    total = nn.functional.cross_entropy(logits[:4], labels) + 12.0 * jensen_shannon(logits)
    torch.testing.assert_close(total, nn.functional.cross_entropy(logits[:4], labels) + 12.0 * by_hand)
    assert float(jensen_shannon(torch.randn(4, 5).repeat(3, 1))) == pytest.approx(0.0, abs=1e-6)  # identical views


def test_augmix_mixing_weights_sum_to_one_and_the_identity_is_reachable():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(16, 3, 12, 12)
    weights = torch.distributions.Dirichlet(torch.ones(3)).sample((16,))
    torch.testing.assert_close(weights.sum(1), torch.ones(16))
    same = images.unsqueeze(1).repeat(1, 3, 1, 1, 1)  # three identity chains mix back to the image
    torch.testing.assert_close(mix(images, same, weights, torch.rand(16, 1, 1, 1)), images)
    torch.testing.assert_close(apply_ops(images, torch.full((16,), -1), list(OPS), torch.rand(16), generator), images)
    out = augmix(images, generator)
    assert out.shape == images.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    assert not torch.equal(out, images)


def test_every_augmix_operation_keeps_the_shape_and_range_and_is_per_image():
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(6, 3, 16, 16)
    for index, name in enumerate(OPS):
        out = apply_ops(images, torch.full((6,), index), list(OPS), torch.full((6,), 0.3), generator)
        assert out.shape == images.shape and float(out.min()) >= 0 and float(out.max()) <= 1, name
        alone = apply_ops(images[:1], torch.zeros(1, dtype=torch.long) + index, list(OPS), torch.full((1,), 0.3),
                          torch.Generator().manual_seed(1))
        assert alone.shape == (1, 3, 16, 16)


def test_the_style_stand_in_takes_the_references_statistics():
    images, styles = torch.rand(4, 3, 16, 16) * 0.5, 0.5 + 0.1 * torch.rand(4, 3, 16, 16)
    out = style_transfer(images, styles, torch.full((4,), 0.1))
    torch.testing.assert_close(out.mean((2, 3)), styles.mean((2, 3)), rtol=0.05, atol=0.02)


def test_deeprepair_style_references_are_one_per_class_and_cluster_of_dfail():
    from archrepair._repair.methods.augmix import style_bank

    rng = np.random.default_rng(0)
    centres = rng.integers(0, 255, size=(3, 5, 4, 4, 3))
    images = np.concatenate([np.clip(centres[c, k] + rng.integers(-3, 4, (4, 4, 4, 3)), 0, 255)
                             for c in range(3) for k in range(5)]).astype(np.uint8)
    labels = np.repeat(np.arange(3), 20)
    references, per_class = style_bank(images, labels, clusters=5, seed=0)
    assert len(references) == 15 and per_class == {0: 5, 1: 5, 2: 5}
    cluster_of = np.repeat(np.arange(15), 4)  # the true (class, cluster) of every image
    assert sorted(cluster_of[references].tolist()) == list(range(15))  # one reference from each cluster
    small, made = style_bank(images[:3], labels[:3], clusters=5, seed=0)  # fewer failures than clusters
    assert len(small) == 3 and made == {0: 3}


def test_sensei_keeps_a_population_per_example_trains_on_the_worst_and_includes_the_identity(digits_task):
    from archrepair._repair.augment import denormalised
    from archrepair._repair.methods.sensei import Population, SenseiConfig, WorstVariants, render

    task, config = digits_task, SenseiConfig()
    population = Population(config, np.random.default_rng(0))
    first = population.candidates(7)
    assert len(first) == config.queue + config.children and np.array_equal(first[0], population.identity)
    model = copy.deepcopy(task.model)
    loader = task.loader(task.fit_indices[:64], 32, shuffle=True, with_rows=True)
    variants = WorstVariants(loader, model, population, task, config)
    batches = list(variants)
    assert set(population.kept) == set(task.fit_indices[:64].tolist())  # every row keeps its queue
    assert all(len(kept) == config.queue for kept in population.kept.values())
    kept_before = {row: kept.copy() for row, kept in population.kept.items()}
    row = int(batches[0][2][0])
    candidates = population.candidates(row)
    assert np.array_equal(candidates[:config.queue], kept_before[row])  # the next epoch starts from the queue
    # the yielded image is the worst-loss candidate of the candidates the search scored
    images, labels, rows = next(iter(task.loader(np.array([row]), with_rows=True)))
    plain = denormalised(images, task.record.mean, task.record.std).clamp(0, 1)
    rng_state = population.rng.bit_generator.state
    scored = population.candidates(row)
    population.rng.bit_generator.state = rng_state
    variants_of_row = render(plain.repeat(len(scored), 1, 1, 1), torch.as_tensor(scored, dtype=torch.float32),
                             population.names)
    from archrepair._repair.augment import normalised

    with torch.no_grad():
        losses = nn.functional.cross_entropy(model.eval()(normalised(variants_of_row, task.record.mean, task.record.std)),
                                             labels.repeat(len(scored)), reduction="none")
    chosen = WorstVariants(task.loader(np.array([row]), with_rows=True), model, population, task, config)
    picked = next(iter(chosen))[0]
    pick = int(losses.argmax())
    worst = normalised(variants_of_row[pick:pick + 1], task.record.mean, task.record.std)[0]
    torch.testing.assert_close(picked[0], worst, rtol=1e-4, atol=1e-4)


def test_bn_adapt_changes_only_running_statistics(digits_task):
    result, _ = run_repair(get_repairer("bn-adapt"), digits_task)
    before, after = digits_task.model.state_dict(), result.candidate.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(name.endswith(("running_mean", "running_var", "num_batches_tracked")) for name in changed)
    for name, parameter in digits_task.model.named_parameters():
        assert torch.equal(parameter, dict(result.candidate.named_parameters())[name])
    assert result.details["images"] == len(digits_task.fit_indices)


@pytest.mark.parametrize("name", ["augmix", "deeprepair", "fewshot-recon", "sensei", "bn-adapt", "bn-adapt-pool"])
def test_each_data_level_method_stops_at_its_budget_and_reports_image_passes(name, digits_task, step_clock):
    before = {k: v.clone() for k, v in digits_task.model.state_dict().items()}
    method = get_repairer(name, budget=Budget(seconds=0.5))  # past it at the first check
    method.clock = step_clock
    result, report = run_repair(method, digits_task)
    assert any("spent at the first step" in note for note in result.details["notes"])  # said, not a normal row
    assert result.details["stop_reason"] == "budget" and result.details["image_passes"] > 0
    assert report["method"] == name
    assert all(torch.equal(before[k], v) for k, v in digits_task.model.state_dict().items())
