"""Each extension point takes one new definition plus one registration: a repair method, a
localiser, a relaxation rule for a new kind of unit, a corruption. Each toy is registered from
this file (into a copy of the registry, so other tests see only the built-in ones) and then used
through the ordinary entry points."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

from archrepair.cli import main


@pytest.fixture
def fresh_registries(monkeypatch):
    """Registrations made in a test vanish after it."""
    from archrepair.data.corruptions import registry as corruptions
    from archrepair._localize import registry as localizers
    from archrepair._repair import registry as methods
    from archrepair._search import graph

    monkeypatch.setattr(methods, "_METHODS", methods._METHODS.copy())
    monkeypatch.setattr(localizers, "_LOCALIZERS", localizers._LOCALIZERS.copy())
    monkeypatch.setattr(graph, "_RULES", list(graph._RULES))
    monkeypatch.setattr(corruptions, "_CORRUPTIONS", corruptions._CORRUPTIONS.copy())


def test_a_repair_method_registered_here_runs_through_repair_method(fresh_registries, digits_checkpoint, tmp_path, capsys):
    from archrepair._repair import Candidate, Repairer, register_repairer
    from archrepair.train import fit

    class HeadOnly(Repairer):
        """Train the final linear layer alone."""

        def __init__(self, train):
            super().__init__()
            self.config = train

        def set_phase_epochs(self, phase, epochs):
            self.config = dataclasses.replace(self.config, epochs=epochs)

        def train(self, task, deadline):
            model = copy.deepcopy(task.model)
            head = model.linear
            history = fit(model, task.loader(task.fit_indices, 64, shuffle=True), self.config,
                          val_loader=task.loader(task.val_indices), parameters=list(head.parameters()),
                          set_train_mode=lambda m: m.eval(), deadline=deadline)
            return Candidate(model, {"epochs": len(history.history)}, {"train": history.seconds})

    register_repairer("head-only", "train the final linear layer")(lambda settings: HeadOnly(settings.train))

    status = main(["repair", str(digits_checkpoint), "--method", "head-only", "--count", "10", "--train-examples", "200",
                   "--finetune-epochs", "2", "--out", str(tmp_path / "r"), "--json"])
    assert status == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    assert report["method"] == "head-only" and report["details"]["epochs"] == 2
    import archrepair

    before, after = archrepair.load(digits_checkpoint), archrepair.load(tmp_path / "r")
    changed = {name for (name, a), b in zip(before.state_dict().items(), after.state_dict().values()) if not torch.equal(a, b)}
    assert changed <= {"linear.weight", "linear.bias"} and bool(changed) == (report["kept"] == "repaired")
    for command in ("repair", "compare"):
        main([command, "--help"])
        assert "  head-only              train the final linear layer" in capsys.readouterr().out


def test_a_localizer_registered_here_picks_the_block(fresh_registries, digits_checkpoint, capsys):
    from archrepair._localize import Localizer, register_localizer

    @register_localizer
    class LastBlock(Localizer):
        name = "last-block"

        def choose(self, report, config):
            return report.blocks[-1].block, "the last block, whatever the statistics"

    status = main(["localize", str(digits_checkpoint), "--method", "last-block", "--count", "10", "--json"])
    assert status == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    assert result["chosen"] == "block3" and result["criterion"] == "the last block, whatever the statistics"


class Gated(nn.Module):
    """A unit no built-in rule knows: its forward branches on the data, so torch.fx cannot trace it."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.transform = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                                       nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                       nn.BatchNorm2d(channels))
        self.activation = nn.ReLU()

    def forward(self, x):
        out = self.transform(x)
        if out.mean() > -1e9:  # data-dependent control flow
            out = out + x
        return self.activation(out)


def test_a_relaxation_rule_registered_here_relaxes_a_new_kind_of_unit(fresh_registries):
    from archrepair.errors import ArchRepairError
    from archrepair._search import RelaxedBlock, SearchSpace, block_graph
    from archrepair._search.graph import add_sequence, register_relaxation_rule

    stage = nn.Sequential(Gated(4), Gated(4)).eval()
    x = torch.randn(3, 4, 7, 7)
    assert list(block_graph(stage, x).edges) == [(0, 1), (1, 2)]  # unknown units: opaque edges, nothing inside
    with pytest.raises(ArchRepairError, match="register a relaxation rule"):
        block_graph(Gated(4), x)

    @register_relaxation_rule("gated", lambda module: isinstance(module, Gated))
    def add_gated(graph, unit):
        start = len(graph.activations)
        add_sequence(graph, list(unit.transform))  # conv-BN-ReLU and conv-BN edges
        graph.edges[(start, len(graph.activations))] = nn.Identity()  # the gate's skip
        graph.activations[-1] = "relu"

    graph = block_graph(stage, x)
    assert list(graph.edges) == [(0, 1), (1, 2), (0, 2), (2, 3), (3, 4), (2, 4)]
    relaxed = RelaxedBlock(graph, SearchSpace()).eval()
    with torch.no_grad():
        for (i, j), alpha in zip(relaxed.pairs, relaxed.alphas):
            names = relaxed.edges[f"{i}_{j}"].names
            alpha.fill_(-1e9)
            alpha[names.index("original" if (i, j) in graph.edges else "none")] = 0
        torch.testing.assert_close(relaxed(x), stage(x))


def test_a_corruption_registered_here_is_used_by_corrupt(fresh_registries):
    from archrepair.data.corruptions import corrupt, list_corruptions, register_corruption

    @register_corruption("INV", deterministic=True, cifar=[0.2, 0.4, 0.6, 0.8, 1.0], tiny_imagenet=[0.2, 0.4, 0.6, 0.8, 1.0])
    def invert(x, c, rng):
        return (1 - c) * x + c * (255 - x)

    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), np.uint8)
    assert list_corruptions()[-1] == "invert"
    np.testing.assert_array_equal(corrupt(images, "invert", 5), 255 - images)


def test_every_registered_method_repairs_and_saves_through_the_command_line(digits_checkpoint, tmp_path, capsys):
    import archrepair
    from archrepair._repair import list_repairers
    from archrepair._repair.registry import searching_repairers

    for method in list_repairers():
        search = ["--search-epochs", "1", "--warmup-epochs", "0"] if method in searching_repairers() else []
        status = main(["repair", str(digits_checkpoint), "--method", method, "--block", "block2", "--count", "10",
                       "--train-examples", "150", *search, "--finetune-epochs", "1",
                       "--level", "10", "--out", str(tmp_path / method), "--json"])
        assert status == 0, (method, capsys.readouterr().err)
        report = json.loads(capsys.readouterr().out)
        assert report["method"] == method
        model = archrepair.load(tmp_path / method)
        x = torch.zeros(2, 1, 8, 8)
        assert model(x).shape == (2, 10)


def test_dry_runs_estimate_every_phase_and_write_nothing(digits_checkpoint, tmp_path, capsys):
    from archrepair._repair.methods.auto import FAILURE_CANDIDATES
    from archrepair._repair import list_repairers

    from archrepair._repair.registry import searching_repairers

    common = ["--count", "10", "--train-examples", "150", "--finetune-epochs", "2", "--level", "10"]
    for method in list_repairers():
        search = ["--search-epochs", "2"] if method in searching_repairers() else []
        estimate = _json(capsys, main(["repair", str(digits_checkpoint), "--method", method, *common, *search, "--dry-run",
                                       "--out", str(tmp_path / "r"), "--json"]))
        phases = {"archrepair": {"search", "finetune"}, "archrepair-fixed-arch": {"search", "finetune"},
                  "archrepair-layer": {"search", "finetune"}, "arachne": {"localise", "search"},
                  "apricot": {"reduced_models", "adjust"}, "mode": {"diagnose", "retrain"},
                  "augmix": {"guide", "train"}, "deeprepair": {"guide", "train"}, "fewshot-recon": {"guide", "train"},
                  "bn-adapt": {"adapt"}, "bn-adapt-pool": {"adapt"}, "sensei": {"train"},
                  "auto": {spec.name for spec in FAILURE_CANDIDATES}}.get(method, {"repair"})
        assert phases <= set(estimate["estimate_seconds"]) and estimate["total_seconds"] > 0, (method, estimate)
    compared = _json(capsys, main(["compare", str(digits_checkpoint), "--methods", "archrepair,block-gradient",
                                   "--seeds", "2", *common, "--dry-run", "--out", str(tmp_path / "c"), "--json"]))
    assert set(compared["seconds_per_run"]) == {"archrepair", "block-gradient"}
    assert not (tmp_path / "r").exists() and not (tmp_path / "c").exists()
    report = _json(capsys, main(["repair", str(digits_checkpoint), "--method", "block-gradient", *common,
                                 "--out", str(tmp_path / "r"), "--json"]))
    assert set(report["estimate_seconds"]) == set(report["phase_seconds"]) == {"repair"}  # recorded beside the times


def _json(capsys, status: int) -> dict:
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)
