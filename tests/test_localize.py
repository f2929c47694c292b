"""Localisation: Eq. 5 and 6 against hand-computed values (0/0 included), the block table and its
thresholds, neuron discovery, streaming statistics and the command."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from archrepair import get_model
from archrepair.data import BatchLoader
from archrepair.train import TrainConfig
from archrepair._localize import (
    LocalizeConfig, NeuronLayer, NeuronStatistics, collect_statistics, dstar, find_neuron_layers, localize,
    ochiai, reweight, summarise, tarantula,
)

T = lambda *values: torch.tensor(values, dtype=torch.float64)  # noqa: E731


def test_tarantula_by_hand():
    # neuron 0: r_m = 3/4, r_c = 1/4 -> 0.75; neuron 1: never activated -> 0/0 -> 0
    # neuron 2: only correct examples seen (no failures) -> r_m = 0/0 = 0 -> 0
    # neuron 3: activated on failures only, no correct examples -> r_m = 1, r_c = 0/0 = 0 -> 1
    scores = tarantula(n_ac=T(1, 0, 2, 0), n_nc=T(3, 4, 2, 0), n_am=T(3, 0, 0, 2), n_nm=T(1, 4, 0, 0))
    torch.testing.assert_close(scores, T(0.75, 0.0, 0.0, 1.0))


def test_ochiai_and_dstar_by_hand():
    n_ac, n_nc, n_am, n_nm = T(1, 0), T(3, 4), T(3, 0), T(1, 4)
    torch.testing.assert_close(ochiai(n_ac, n_nc, n_am, n_nm), T(3 / np.sqrt(4 * 4), 0.0))
    torch.testing.assert_close(dstar(n_ac, n_nc, n_am, n_nm), T(9 / 2, 0.0))
    assert dstar(T(0), T(5), T(2), T(0)).item() == 0.0  # denominator 0 -> 0 by convention


def test_reweighting_by_hand():
    # block 0: g = 1, 3 (G_0 = 2); block 1: g = 6 (G_1 = 6); G = 4
    # |g - G| = 3, 1, 2; max 3 -> factors 1, 1/3, 2/3
    scores = reweight(T(0.5, 0.9, 0.3), T(1, 3, 6), torch.tensor([0, 0, 1]))
    torch.testing.assert_close(scores, T(0.5, 0.3, 0.2))


def test_reweighting_uses_the_mean_of_block_means_not_of_neurons():
    # neuron mean would be (0 + 0 + 0 + 4) / 4 = 1; the mean of block means is (0 + 4) / 2 = 2
    scores = reweight(T(1, 1, 1, 1), T(0, 0, 0, 4), torch.tensor([0, 0, 0, 1]))
    torch.testing.assert_close(scores, T(1, 1, 1, 1))


def test_reweighting_with_equal_gradients_is_zero_not_nan():
    assert torch.equal(reweight(T(0.4, 0.7), T(2, 2), torch.tensor([0, 1])), T(0, 0))


def _stats(spectrum_hits, gradient):
    """Statistics where neuron j was activated on ``spectrum_hits[j]`` of 10 failures, on no correct example."""
    hits = torch.tensor(spectrum_hits, dtype=torch.float64)
    zeros = torch.zeros_like(hits)
    return NeuronStatistics(n_ac=zeros, n_nc=zeros + 10, n_am=hits, n_nm=10 - hits,
                            gradient=torch.tensor(gradient, dtype=torch.float64), correct=10, misclassified=10)


def test_block_table_counts_top_k_and_absolute_levels():
    layers = [NeuronLayer("a", "a.0", "a.1", 2), NeuronLayer("b", "b.0", "b.1", 3)]
    # tarantula is 1 for every neuron activated on some failure, 0 otherwise; gradients pick the rest
    stats = _stats([10, 10, 10, 10, 0], [0.0, 0.0, 1.0, 1.0, 0.5])
    report = summarise(stats, layers, ["a", "b"], LocalizeConfig(levels=(1, 2), level=2, absolute=0.8))
    rows = {row.block: row for row in report.blocks}
    # G = mean(G_a = 0, G_b = 2.5/3) = 5/12; |g - G| = 5/12 5/12 7/12 7/12 1/12 -> scores 5/7 5/7 1 1 0
    torch.testing.assert_close(torch.tensor([rows["a"].mean_score, rows["b"].mean_score]), torch.tensor([5 / 7, 2 / 3]))
    assert rows["b"].vulnerable == {"top1": 2, "top2": 2, "abs": 2}  # ties at the top count together
    assert rows["a"].vulnerable == {"top1": 0, "top2": 0, "abs": 0}
    assert report.chosen == "b" and report.ranking_reweighted == ["b", "a"]
    # spectrum alone: 1 1 | 1 1 0 -> both blocks hold 2 of the top 2 (ties), a's mean 1 beats b's 2/3
    assert report.ranking_spectrum == ["a", "b"]


def test_ties_are_broken_by_mean_reweighted_score():
    layers = [NeuronLayer("a", "a.0", "a.1", 2), NeuronLayer("b", "b.0", "b.1", 2)]
    # tarantula 1.0, 0.2 in block a and 0.9, 0.8 in block b; gradients give every neuron factor 1
    stats = NeuronStatistics(n_ac=T(0, 1, 1, 1), n_nc=T(8, 0, 8, 3), n_am=T(10, 1, 10, 10), n_nm=T(0, 3, 0, 0),
                             gradient=T(1, 1, 0, 0), correct=10, misclassified=10)
    report = summarise(stats, layers, ["a", "b"], LocalizeConfig(levels=(2,), level=2))
    assert [row.vulnerable["top2"] for row in report.blocks] == [1, 1]
    torch.testing.assert_close(torch.tensor([row.mean_score for row in report.blocks]), torch.tensor([0.6, 0.85]))
    assert report.chosen == "b"


def test_resnet_neurons_are_read_after_their_batchnorm():
    model = get_model("resnet18", width=0.125)
    layers = find_neuron_layers(model, ["layer1", "layer2"], (3, 32, 32))
    assert layers[0] == NeuronLayer("layer1", "layer1.0.conv1", "layer1.0.bn1", 8)
    assert [layer.block for layer in layers] == ["layer1"] * 4 + ["layer2"] * 5  # layer2 has a shortcut conv
    assert "layer2.0.shortcut.0" in [layer.layer for layer in layers]


def test_statistics_are_counted_per_example_and_do_not_depend_on_batching(digits_checkpoint, digits):
    from archrepair.checkpoint import load_checkpoint

    model, record = load_checkpoint(digits_checkpoint)
    layers = find_neuron_layers(model, ["block1", "block2", "block3"], (1, 8, 8))
    runs = []
    for batch_size in (7, 300):
        loader = BatchLoader(digits.x_test, digits.y_test, record.mean, record.std, batch_size=batch_size)
        runs.append(collect_statistics(model, layers, loader, progress=False))
    a, b = runs
    assert a.correct + a.misclassified == len(digits.y_test)
    total = (a.n_ac + a.n_nc + a.n_am + a.n_nm)
    assert torch.all(total == len(digits.y_test))
    for key in ("n_ac", "n_nc", "n_am", "n_nm"):
        assert torch.equal(getattr(a, key), getattr(b, key))
    torch.testing.assert_close(a.gradient, b.gradient)
    assert (a.gradient > 0).any()


def test_gradient_is_the_mean_over_failures_of_the_activation_gradient():
    """One linear neuron layer inside a block; its gradient by autograd, by hand."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Sequential(nn.Linear(4, 3)), nn.Linear(3, 2))
    model.block_names = ("1",)
    layers = find_neuron_layers(model, ["1"], (1, 2, 2))
    x = torch.randn(6, 1, 2, 2)
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    stats = collect_statistics(model, layers, [(x, y)], progress=False)
    hidden = model[1](model[0](x)).detach().requires_grad_(True)
    logits = model[2](hidden)
    wrong = logits.argmax(1) != y
    nn.functional.cross_entropy(logits[wrong], y[wrong], reduction="sum").backward()
    expected = hidden.grad[wrong].abs().mean(0).double()
    torch.testing.assert_close(stats.gradient, expected)
    assert stats.misclassified == int(wrong.sum())


def test_localize_does_not_change_the_model(digits_checkpoint, digits):
    from archrepair.checkpoint import load_checkpoint

    model, record = load_checkpoint(digits_checkpoint)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loader = BatchLoader(digits.x_test, digits.y_test, record.mean, record.std)
    report = localize(model, loader, (1, 8, 8), config=LocalizeConfig(level=20), progress=False)
    most = max(row.vulnerable["top20"] for row in report.blocks)
    assert [row.block for row in report.blocks if row.vulnerable["top20"] == most][0] == report.chosen
    assert sum(row.vulnerable["top20"] for row in report.blocks) >= 20
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())


def test_localize_command_writes_a_report(cli, digits_checkpoint, tmp_path):
    status, out, _ = cli("localize", digits_checkpoint, "--count", "10", "--train-examples", "200",
                         "--level", "20", "--out", tmp_path / "loc.json", "--json")
    assert status == 0
    result = json.loads(out)
    assert json.loads((tmp_path / "loc.json").read_text()) == result
    assert result["chosen"] == result["ranking_reweighted"][0]
    assert sorted(result["ranking_shift"]) == ["block1", "block2", "block3"]
    assert result["misclassified"] >= 10 and result["extra"]["train_examples"] == 200
    assert [row["neurons"] for row in result["blocks"]] == [8 * 2, 16 * 2, 32 * 2]  # small_cnn at width 0.5


def test_block_shift_is_what_a_block_adds_to_the_largest_earlier_shift():
    from archrepair._localize import Normaliser, block_shift

    normalisers = [Normaliser("stem.bn", None), Normaliser("a.bn1", "a"), Normaliser("a.bn2", "a"),
                   Normaliser("b.bn", "b")]
    # a: max(0.5, 2.0) - 0.2 (the stem); b: 1.0 - max(0.2, 0.5, 2.0) < 0; c has no BatchNorm
    shifts = block_shift(normalisers, [0.2, 0.5, 2.0, 1.0], ["a", "b", "c"])
    assert shifts[:2] == [2.0 - 0.2, 1.0 - 2.0] and np.isnan(shifts[2])


def test_moment_shift_is_zero_on_matching_data_and_one_per_standard_deviation_of_mean_shift():
    from archrepair._localize.shift import MomentCounter

    torch.manual_seed(0)
    norm = nn.BatchNorm2d(3, eps=0.0).eval()
    data = torch.randn(4000, 3, 2, 2) * 2 + 5
    norm.running_mean.copy_(data.mean((0, 2, 3)))
    norm.running_var.copy_(data.var((0, 2, 3), unbiased=False))
    counter = MomentCounter()
    for chunk in data.split(300):  # streamed in chunks: the moments add up
        counter.hook(norm, (chunk,))
    assert counter.shift(norm) < 1e-5  # float32 running statistics
    moved = MomentCounter()
    moved.hook(norm, (data + 2 * norm.running_var.sqrt()[None, :, None, None],))
    assert abs(moved.shift(norm) - 2.0) < 1e-4  # mean moved by 2 running standard deviations, variance equal


def test_fault_injection_the_shift_method_names_the_damaged_block(tmp_path, digits):
    """Noise in one block's weights, scaled so that test accuracy drops by 15 points: the shift
    method names that block, for every block and three noise seeds. (The paper's spectrum method
    does not: it names block3 in every case, benchmarks/localize_faults.py.) The model is trained to
    about 97% (width 1, 15 epochs; a few seconds)."""
    from archrepair.base_model import TrainJob, train_base_model
    from archrepair.checkpoint import load_checkpoint
    from archrepair.data import select_failures
    from archrepair.data.repair_set import repair_set
    from archrepair.evaluate import predict_logits
    from archrepair._localize.faults import add_weight_noise, noise_for_drop

    train_base_model(digits, TrainJob("small_cnn", 1.0, seed=0), TrainConfig(epochs=15, lr=0.05), tmp_path / "m",
                     torch.device("cpu"))
    model, record = load_checkpoint(tmp_path / "m")
    test = BatchLoader(digits.x_test, digits.y_test, record.mean, record.std)
    for seed in (0, 1, 2):
        for block in ("block1", "block2", "block3"):
            scale, drop = noise_for_drop(model, block, test, 0.15, seed)
            assert 0.10 <= drop <= 0.20
            damaged = add_weight_noise(model, block, scale, seed)
            predictions = predict_logits(damaged, test).argmax(1).numpy()
            repair = repair_set(digits, select_failures(predictions, digits.y_test, 1000, seed), 500, seed)
            loader = BatchLoader(repair.x, repair.y, record.mean, record.std)
            report = localize(damaged, loader, (1, 8, 8), config=LocalizeConfig(level=20, method="shift"), progress=False)
            assert report.chosen == block, (seed, block, [r.shift for r in report.blocks])


def test_shift_method_without_batchnorm_is_refused():
    from archrepair.errors import ArchRepairError

    model = nn.Sequential(nn.Flatten(), nn.Sequential(nn.Linear(4, 3)), nn.Linear(3, 2))
    model.block_names = ("1",)
    with pytest.raises(ArchRepairError, match="needs BatchNorm"):
        localize(model, [(torch.randn(4, 1, 2, 2), torch.tensor([0, 1, 0, 1]))], (1, 2, 2),
                 config=LocalizeConfig(method="shift"), progress=False)


def test_shift_method_names_the_earliest_block_within_the_ratio_of_the_largest():
    from archrepair._localize import Normaliser

    layers = [NeuronLayer(b, f"{b}.conv", f"{b}.conv", 1) for b in ("a", "b", "c")]
    normalisers = [Normaliser(f"{b}.bn", b) for b in ("a", "b", "c")]
    stats = _stats([1, 1, 1], [1, 2, 3])
    stats.shifts = [0.6, 0.6, 1.1]  # added: a 0.6, b 0.0, c 0.5 -> a is the earliest with >= 0.5 * 0.6
    report = summarise(stats, layers, ["a", "b", "c"], LocalizeConfig(level=2, method="shift"), normalisers)
    assert report.chosen == "a" and report.ranking_shift == ["a", "c", "b"]
    assert [row.shift for row in report.blocks] == pytest.approx([0.6, 0.0, 0.5])
    strict = summarise(stats, layers, ["a", "b", "c"], LocalizeConfig(level=2, method="shift", shift_ratio=1.0), normalisers)
    assert strict.chosen == "a"
    stats.shifts = [0.2, 0.2, 1.1]  # added: a 0.2, b 0.0, c 0.9 -> c
    assert summarise(stats, layers, ["a", "b", "c"], LocalizeConfig(level=2, method="shift"), normalisers).chosen == "c"


def test_localize_command_with_the_shift_method(cli, digits_checkpoint):
    status, out, _ = cli("localize", digits_checkpoint, "--count", "10", "--train-examples", "200", "--level", "20",
                         "--method", "shift")
    assert status == 0 and "normalisation-statistics shift" in out and "ranking by shift" in out
