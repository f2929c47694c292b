"""Cached block inputs: the cached path computes what the full forward computes (logits, and one
optimisation step of the relaxed block), on every block of every model family; spilling changes
nothing; a stale cache is refused on resume; the cache is off, with its reason, where it would
not be exact."""

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torchvision import models as tvm

from archrepair import get_model
from archrepair.checkpoint import load_checkpoint
from archrepair.errors import ArchRepairError
from archrepair.evaluate import predict_logits
from archrepair.models import default_blocks, get_block, replace_block
from archrepair.train import TrainConfig
from archrepair._repair import TaskConfig, make_task
from archrepair._repair.block_inputs import PackedSuffix, pack
from archrepair._repair.block_split import CacheOff, split_at_block
from archrepair._repair.methods.gradient import GradientConfig, GradientRepair
from archrepair._search.surgery import block_input, trainable_only
from archrepair._search import RelaxedBlock, SearchConfig, SearchSpace, block_graph
from archrepair._search.optimise import architecture_step, weight_step

FAMILIES = {
    "resnet18": lambda: get_model("resnet18", width=0.125),
    "vgg16": lambda: get_model("vgg16", width=0.125),
    "densenet121": lambda: get_model("densenet121", width=0.125),
    "efficientnet_b0": lambda: get_model("efficientnet_b0", width=0.25),
    "small_cnn": lambda: get_model("small_cnn", width=0.5),
    "torchvision resnet18": lambda: tvm.resnet18(num_classes=10),
    "torchvision mobilenet_v2": lambda: tvm.mobilenet_v2(num_classes=10),
}
RELAXED = [("resnet18", "layer2"), ("vgg16", "features.14:24"), ("densenet121", "dense2.3.layers"),
           ("efficientnet_b0", "stage2"), ("small_cnn", "block2"), ("torchvision resnet18", "layer3")]


def _trained_like(model: nn.Module) -> nn.Module:
    """BatchNorm layers with non-trivial statistics, so that errors cannot hide behind identities."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
    return model.eval()


def _cached(model: nn.Module, block: str, images: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    """The repair's cached path: the suffix module and the packed batch of ``images``."""
    cut = split_at_block(model, block)
    with torch.no_grad():
        frontier = cut.prefix(model)(images)
    return PackedSuffix(cut.suffix(model), [tuple(v.shape[1:]) for v in frontier], False), pack(frontier)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_cached_logits_equal_the_full_forward_on_every_block(family):
    torch.manual_seed(0)
    model = _trained_like(FAMILIES[family]())
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        full = model(images)
        for block in default_blocks(model):
            suffix, packed = _cached(model, block, images)
            torch.testing.assert_close(suffix(packed), full, rtol=1e-4, atol=1e-5, msg=f"{family} {block}")


@pytest.mark.parametrize("family,block", RELAXED, ids=[f"{f} {b}" for f, b in RELAXED])
def test_one_search_step_on_the_cached_path_equals_the_full_path(family, block):
    torch.manual_seed(0)
    base = _trained_like(FAMILIES[family]())
    images, labels = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    graph = block_graph(get_block(base, block), block_input(base, block, images))
    results = []
    for cached in (False, True):
        torch.manual_seed(1)
        model = copy.deepcopy(base)
        relaxed = RelaxedBlock(copy.deepcopy(graph), SearchSpace())
        replace_block(model, block, relaxed)
        trainable_only(model, relaxed)(model)
        run, batch = _cached(model, block, images) if cached else (model, images)
        weights = [p for p in relaxed.weight_parameters() if p.requires_grad]
        weight_opt = torch.optim.SGD(weights, lr=0.05, momentum=0.9)
        arch_opt = torch.optim.Adam(relaxed.architecture_parameters(), lr=0.03)
        architecture_step(run, relaxed, batch, labels, arch_opt, SearchConfig())
        weight_step(run, batch, labels, weights, weight_opt, 0.05, SearchConfig())
        results.append(relaxed.state_dict())
    moved = 0
    for name, value in results[0].items():
        torch.testing.assert_close(results[1][name], value, rtol=1e-4, atol=1e-5, msg=name)
    for name, parameter in RelaxedBlock(copy.deepcopy(graph), SearchSpace()).state_dict().items():
        moved += not torch.equal(parameter, results[0][name])
    assert moved > 0  # the step changed something, so the comparison means something


class _Skip(nn.Module):
    """A later module reads an earlier tensor (as in DenseNet): the cut needs two values."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.conv = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.block = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        stem = self.stem(x)
        out = torch.cat([stem, self.block(self.conv(stem))], 1)
        return self.head(out.mean((2, 3)))


class _Random(_Skip):
    def forward(self, x):
        return super().forward(x + 0.1 * torch.randn_like(x))


class _Branching(_Skip):
    def forward(self, x):
        return super().forward(x if x.sum() > 0 else -x)


def test_a_cut_that_needs_two_earlier_values_is_exact():
    model = _trained_like(_Skip())
    images = torch.randn(5, 3, 16, 16)
    assert len(split_at_block(model, "block").frontier) == 2
    suffix, packed = _cached(model, "block", images)
    torch.testing.assert_close(suffix(packed), model(images), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model,reason", [(_Random(), "draws random numbers"), (_Branching(), "torch.fx cannot trace")])
def test_a_model_the_cache_cannot_handle_says_why(model, reason):
    with pytest.raises(CacheOff, match=reason):
        split_at_block(model, "block")


@pytest.fixture(scope="module")
def task_parts(digits_checkpoint, digits, digits_split):
    model, record = load_checkpoint(digits_checkpoint)
    return model, record, digits, digits_split(15)


def _task(parts, **config):
    model, record, data, split = parts
    return make_task(model, record, data, split, TaskConfig(train_examples=300, **config))


def _repair(task, level="block"):
    repairer = GradientRepair(GradientConfig(level, TrainConfig(epochs=2, batch_size=64, lr=0.02, patience=None)))
    return repairer.repair(task)


@pytest.mark.parametrize("level", ["block", "layer", "neuron"])
def test_repairs_with_and_without_the_cache_are_the_same(task_parts, level):
    cached, full = _repair(_task(task_parts), level), _repair(_task(task_parts, prefix_cache=False), level)
    assert cached.details["prefix_cache"] == "on"
    assert full.details["prefix_cache"] == "off: turned off (--no-prefix-cache)"
    assert (cached.kept, cached.val_accuracy_repaired) == (full.kept, full.val_accuracy_repaired)
    for (name, a), b in zip(cached.candidate.state_dict().items(), full.candidate.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


def test_a_cache_over_its_memory_cap_spills_to_a_file_and_gives_the_same_repair(task_parts, tmp_path):
    in_memory = _task(task_parts)
    spilled = _task(task_parts, cache_memory=0)
    view = spilled.block_view("block2", tmp_path / "work")
    inputs = view.cached_inputs()
    assert inputs.spilled_to == tmp_path / "work" / "block_inputs.npy" and inputs.spilled_to.stat().st_size > inputs.nbytes
    assert isinstance(in_memory.block_view("block2").cached_inputs().values, torch.Tensor)
    rows = torch.as_tensor(np.arange(len(spilled.repair.y))[::-1].copy())
    torch.testing.assert_close(inputs.take(rows), in_memory.views["block2"].inputs.take(rows))
    full = predict_logits(spilled.model, spilled.loader(np.arange(len(spilled.repair.y))))
    torch.testing.assert_close(view.original_logits(), full, rtol=1e-4, atol=1e-5)
    a, b = _repair(in_memory), _repair(spilled)
    for (name, x), y in zip(a.candidate.state_dict().items(), b.candidate.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)


def test_building_the_cache_runs_only_the_part_before_the_block(task_parts):
    task = _task(task_parts)
    head = list(task.model.children())[-1]
    calls = []
    handle = head.register_forward_hook(lambda *args: calls.append(1))
    try:
        task.block_view("block2").cached_inputs()
        assert not calls  # the original logits are not made until asked for
        logits = task.original_logits()
        assert calls and logits.shape == (len(task.repair.y), 10)
    finally:
        handle.remove()


def test_evaluating_at_a_block_leaves_every_module_of_the_model_in_eval_mode(task_parts):
    task = _task(task_parts)
    bound = task.block_view("block2").bind(task.model)
    predict_logits(bound.model, bound.loader(task.val_indices))
    task.original_logits()
    assert not any(module.training for module in task.model.modules())


def test_a_stale_cache_is_refused_on_resume(task_parts, tmp_path):
    work = tmp_path / "work"
    _task(task_parts).block_view("block2", work).cached_inputs()
    _task(task_parts).block_view("block2", work).cached_inputs()  # the same key: a resume goes on
    for task, block, differing in [(_task(task_parts), "block3", "block"), (_task(task_parts, seed=1), "block2", "rows"),
                                   (_task(task_parts, amp=True), "block2", "amp")]:
        with pytest.raises(ArchRepairError, match=f"another {differing}"):
            task.block_view(block, work).cached_inputs()
    model, record, data, split = task_parts
    changed = copy.deepcopy(model)
    next(changed.parameters()).data.add_(0.01)
    task = make_task(changed, record, data, split, TaskConfig(train_examples=300))
    with pytest.raises(ArchRepairError, match="another model"):
        task.block_view("block2", work).cached_inputs()


def test_the_cache_is_off_when_something_outside_the_block_trains(task_parts):
    task = _task(task_parts)
    view = task.block_view("block2")
    model = copy.deepcopy(task.model).requires_grad_(False)
    assert view.bind(model, lambda m: m.train()).status.endswith("outside the block is in training mode")
    set_mode = trainable_only(model, get_block(model, "block2"))
    next(model.parameters()).requires_grad_(True)  # a stem weight before the block
    assert "before the block has trainable parameters" in view.bind(model, set_mode).status
    frozen = copy.deepcopy(task.model)
    assert view.bind(frozen, trainable_only(frozen, get_block(frozen, "block2"))).status == "on"


def test_cache_memory_sizes_parse_with_binary_units():
    from archrepair._checks import byte_size

    assert [byte_size(text) for text in ("4G", "512m", "0", "1.5K", "2048")] == [4 * 2**30, 512 * 2**20, 0, 1536, 2048]


class _BatchScaled(nn.Module):
    """A value before the block that is one number per batch (not per example) and is read after it."""

    def __init__(self):
        super().__init__()
        self.stem, self.block, self.head = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.Linear(4, 10)

    def forward(self, x):
        h = self.stem(x)
        scale = h.mean()
        return self.head(self.block(h).mean((2, 3))) * scale


def test_a_value_before_the_block_that_is_not_one_row_per_example_turns_the_cache_off(task_parts):
    model, record, data, split = task_parts
    task = make_task(_BatchScaled().eval(), record, data, split, TaskConfig(train_examples=100))
    bound = task.block_view("block").bind(task.model)
    assert bound.status.startswith("off:") and "not one row per example" in bound.status
    images, _ = next(iter(bound.loader(task.val_indices[:8])))
    torch.testing.assert_close(bound.model(images), task.model(images))  # the full model on images instead
