"""The search space: the original block is a special case of the relaxed block for every block
kind, the start is close to the original, discretising before any step gives the original back."""

import copy

import numpy as np
import pytest
import torch
from torchvision import models as tvm

from archrepair import get_model
from archrepair.base_model import make_loader
from archrepair.checkpoint import load_checkpoint
from archrepair.models import get_block, replace_block
from archrepair._search.surgery import block_input
from archrepair._search import DiscreteBlock, MixedEdge, RelaxedBlock, SearchSpace, block_graph, discretise
from archrepair.train import accuracy

CASES = [
    ("resnet18 basic stage with projection shortcut", lambda: get_model("resnet18", width=0.125), "layer2"),
    ("resnet50 bottleneck stage", lambda: get_model("resnet50", width=0.125), "layer1"),
    ("vgg16 segment (a slice)", lambda: get_model("vgg16", width=0.125), "features.14:24"),
    ("densenet121 bottleneck", lambda: get_model("densenet121", width=0.125), "dense2.3.layers"),
    ("efficientnet_b0 stage with residuals", lambda: get_model("efficientnet_b0", width=0.25), "stage2"),
    ("small_cnn sequential block", lambda: get_model("small_cnn", width=0.5), "block2"),
    ("torchvision resnet18 stage", lambda: tvm.resnet18(num_classes=10), "layer3"),
]


def _trained_like(model):
    """Give BatchNorm layers non-trivial statistics so that errors cannot hide behind identities."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
    return model.eval()


@pytest.mark.parametrize("description,build,block", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("partial_channels", [1, 4])
def test_original_selected_reproduces_the_block(description, build, block, partial_channels):
    torch.manual_seed(0)
    model = _trained_like(build())
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
    inputs = block_input(model, block, x)
    graph = block_graph(copy.deepcopy(get_block(model, block)), inputs)
    relaxed = RelaxedBlock(graph, SearchSpace(partial_channels=partial_channels, original_logit=1e4)).eval()
    assert any(isinstance(m, MixedEdge) and len(m.names) == 7 for m in relaxed.modules())  # 6 candidates + original
    relaxed_model = copy.deepcopy(model)
    replace_block(relaxed_model, block, relaxed)
    with torch.no_grad():
        assert (relaxed(inputs) - get_block(model, block)(inputs)).abs().max() <= 1e-5
        assert (relaxed_model(x) - expected).abs().max() <= 1e-5
    genotype = discretise(relaxed)
    assert genotype.is_original(graph.edges)
    discrete = DiscreteBlock(genotype, graph.edges).eval()
    with torch.no_grad():
        assert (discrete(inputs) - get_block(model, block)(inputs)).abs().max() <= 1e-5


def _edge_by_edge(block: RelaxedBlock, x: torch.Tensor) -> torch.Tensor:
    """The relaxed block as Eq. 7-8 write it: every edge alone, every operation through its own module."""
    nodes = [x]
    for j in range(1, len(block.shapes)):
        incoming = [e for e, (_, k) in enumerate(block.pairs) if k == j]
        scale = len(incoming) * torch.softmax(block.betas[j], 0)
        total = 0
        for position, e in enumerate(incoming):
            i = block.pairs[e][0]
            edge, weights = block.edges[f"{i}_{j}"], torch.softmax(block.alphas[e], 0)
            source = nodes[i]
            active = [n for n in edge.names if n not in ("none", "original")]
            mixed = sum(weights[edge.names.index(n)] * edge.ops[n](source[:, : edge.split]) for n in active)
            if edge.partial:
                share = sum(weights[edge.names.index(n)] for n in active)
                mixed = torch.cat([mixed, share * edge.bypass(source[:, edge.split:])], 1)
            if edge.original is not None:
                mixed = mixed + weights[edge.names.index("original")] * edge.original(source)
            total = total + scale[position] * mixed
        nodes.append(block.node_activations[j - 1](total))
    return nodes[-1]


@pytest.mark.parametrize("description,build,block", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("partial_channels", [1, 4])
def test_edges_leaving_a_node_run_together_exactly_as_edge_by_edge(description, build, block, partial_channels):
    """Outputs, every gradient (operation weights, alphas, betas, the original modules) and the
    running statistics after a training-mode pass equal the edge-by-edge computation. In float64,
    so that the summation order (which depends on the thread count) cannot move them apart."""
    torch.manual_seed(0)
    model = _trained_like(build())
    inputs = block_input(model, block, torch.randn(6, 3, 32, 32))
    graph = block_graph(copy.deepcopy(get_block(model, block)), inputs)
    inputs = inputs.double()
    together = RelaxedBlock(graph, SearchSpace(partial_channels=partial_channels)).double().train()
    with torch.no_grad():
        for alpha in together.architecture_parameters():
            alpha.normal_()  # every operation weighs
    alone = copy.deepcopy(together)
    outputs = [together(inputs), _edge_by_edge(alone, inputs)]
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-9, atol=1e-10)
    target = torch.randn_like(outputs[0])
    for output in outputs:
        (output * target).sum().backward()
    for (name, mine), theirs in zip(together.named_parameters(), alone.parameters()):
        assert (mine.grad is None) == (theirs.grad is None), name
        if mine.grad is not None:
            scale = float(theirs.grad.abs().max())  # summation order differs: rounding grows with the scale
            torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-9, atol=1e-9 * scale + 1e-12, msg=name)
    for (name, mine), theirs in zip(together.named_buffers(), alone.buffers()):
        torch.testing.assert_close(mine, theirs, rtol=1e-9, atol=1e-10, msg=name)
    together.eval(), alone.eval()
    with torch.no_grad():
        torch.testing.assert_close(together(inputs), _edge_by_edge(alone, inputs), rtol=1e-9, atol=1e-10)


def test_layers_the_grouping_does_not_know_and_unequal_structures_run_module_by_module():
    from archrepair._search.edge_group import _run_together

    torch.manual_seed(0)
    x = torch.randn(2, 4, 5, 5)
    unknown = [torch.nn.Sequential(torch.nn.GELU(), torch.nn.Conv2d(4, 6, 3, 2, 2, 2), torch.nn.GroupNorm(2, 6))
               for _ in range(3)]  # GELU and GroupNorm: per edge; the conv: grouped, stride = dilation = 2
    unequal = [torch.nn.Sequential(torch.nn.Conv2d(4, 6, 1)), torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Conv2d(4, 6, 1))]
    for modules in (unknown, unequal):
        output, stacked = _run_together(modules, x)
        assert stacked
        torch.testing.assert_close(output, torch.cat([module(x) for module in modules], 1), rtol=1e-5, atol=1e-6)


def test_discretising_the_default_start_gives_the_original_architecture():
    model = _trained_like(get_model("resnet18", width=0.125))
    graph = block_graph(copy.deepcopy(model.layer3), block_input(model, "layer3", torch.randn(2, 3, 32, 32)))
    relaxed = RelaxedBlock(graph, SearchSpace())
    assert discretise(relaxed).is_original(graph.edges)
    assert len(relaxed.pairs) == 10  # K = 4 operation layers -> 5 nodes -> all 10 pairs
    assert [[len(group) for group in groups] for groups in relaxed.leaving] == [[4], [3], [2], [1], []]  # run together


def test_search_start_is_within_one_point_of_the_original(digits_checkpoint, digits):
    model, record = load_checkpoint(digits_checkpoint)
    loader = make_loader(digits, "test", record)
    original = accuracy(model, loader)
    for block in ("block1", "block2", "block3"):
        torch.manual_seed(0)
        relaxed_model = copy.deepcopy(model)
        graph = block_graph(get_block(relaxed_model, block), block_input(model, block, next(iter(loader))[0]))
        replace_block(relaxed_model, block, RelaxedBlock(graph, SearchSpace()))
        assert abs(accuracy(relaxed_model, loader) - original) <= 0.01, block


def test_top2_rule_keeps_at_most_two_edges_per_node():
    model = get_model("resnet18", width=0.125).eval()
    graph = block_graph(copy.deepcopy(model.layer1), block_input(model, "layer1", torch.randn(2, 3, 32, 32)))
    relaxed = RelaxedBlock(graph, SearchSpace())
    with torch.no_grad():
        for alpha in relaxed.alphas:
            alpha.normal_()
    genotype = discretise(relaxed, "top2")
    for node in range(1, 5):
        incoming = [e for e in genotype.edges if e["target"] == node]
        assert 1 <= len(incoming) <= 2 and all(e["op"] != "none" for e in incoming)


def test_max_span_limits_new_edges_but_keeps_the_original_ones():
    model = get_model("resnet18", width=0.125).eval()
    graph = block_graph(copy.deepcopy(model.layer1), block_input(model, "layer1", torch.randn(2, 3, 32, 32)))
    relaxed = RelaxedBlock(graph, SearchSpace(max_span=1))
    assert set(graph.edges) <= set(relaxed.pairs)
    assert all(j - i <= 1 or (i, j) in graph.edges for i, j in relaxed.pairs)


def test_the_architecture_step_moves_the_alphas_as_a_pass_with_weight_gradients_would():
    from archrepair._search import SearchConfig
    from archrepair._search.optimise import architecture_step
    from archrepair._search.surgery import trainable_only

    torch.manual_seed(0)
    base = get_model("resnet18", width=0.125).eval()
    images, labels = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    moved = []
    for frozen in (True, False):
        model = copy.deepcopy(base)
        graph = block_graph(get_block(model, "layer2"), block_input(model, "layer2", images))
        torch.manual_seed(1)  # the same initial weights of the new operations in both runs
        relaxed = RelaxedBlock(graph, SearchSpace(partial_channels=1))
        replace_block(model, "layer2", relaxed)
        trainable_only(model, relaxed)(model)
        optimizer = torch.optim.SGD(relaxed.architecture_parameters(), lr=1.0)  # the step is the gradient itself
        if frozen:
            architecture_step(model, relaxed, images, labels, optimizer, SearchConfig())
            assert all(p.grad is None for p in relaxed.weight_parameters())  # no weight gradient was computed
            assert all(p.requires_grad for p in relaxed.weight_parameters())  # and the weights train again after
        else:  # the same step with the weights' gradients computed too
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(images), labels)
            loss = loss + 0.5 * torch.stack([torch.logsumexp(a, 0) for a in relaxed.alphas]).mean()
            loss.backward()
            optimizer.step()
        moved.append(torch.cat([a.detach().flatten() for a in relaxed.architecture_parameters()]))
    torch.testing.assert_close(moved[0], moved[1], rtol=1e-5, atol=1e-7)
    start = RelaxedBlock(block_graph(get_block(base, "layer2"), block_input(base, "layer2", images)),
                         SearchSpace(partial_channels=1))
    assert not torch.equal(moved[0], torch.cat([a.detach().flatten() for a in start.architecture_parameters()]))


class _SpikeOrFlat(torch.nn.Module):
    """A one-convolution block (1x1) read through a global average and a linear head: it sees only
    an image's mean, so it cannot tell one bright spot from the same brightness spread evenly."""

    def __init__(self):
        super().__init__()
        self.block = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1))
        self.head = torch.nn.Linear(1, 2)
        with torch.no_grad():  # a fixed head that reads a larger mean as class 1
            self.head.weight.copy_(torch.tensor([[-2.0], [2.0]]))
            self.head.bias.zero_()

    def forward(self, x):
        return self.head(self.block(x).mean((2, 3)))


def _spike_or_flat(count: int, seed: int):
    """Images ``(N, 8, 8, 1)`` uint8: class 1 one spot of 255, class 0 every pixel 4 (the same mean)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 2
    images = np.full((count, 8, 8, 1), 4, dtype=np.uint8)
    for index in np.flatnonzero(labels):
        images[index] = 0
        images[index, rng.integers(8), rng.integers(8), 0] = 255
    return images, labels


@pytest.mark.parametrize("architecture_steps", [True, False])
def test_the_search_moves_to_an_operation_that_can_do_what_the_original_cannot(architecture_steps):
    from archrepair._search import SearchConfig, search
    from archrepair.data import BatchLoader

    torch.manual_seed(0)
    model = _SpikeOrFlat()
    images, labels = _spike_or_flat(256, 0)
    loader = BatchLoader(images, labels, [0.05], [0.2], batch_size=32, shuffle=True)
    val_loader = BatchLoader(*_spike_or_flat(128, 1), [0.05], [0.2], batch_size=32, shuffle=True)
    graph = block_graph(model.block, torch.zeros(2, 1, 8, 8))
    space = SearchSpace(candidates=("none", "skip_connect", "max_pool_3x3"), partial_channels=1, original_logit=1.0)
    relaxed = RelaxedBlock(graph, space)
    start = [p.detach().clone() for p in relaxed.architecture_parameters()]
    model.block = relaxed  # only the block searches and trains
    epochs = 12
    config = SearchConfig(epochs=epochs, warmup_epochs=0 if architecture_steps else epochs, lr=0.05, arch_lr=0.1,
                          beta_decay=0.0)  # with the default 0.5 the mixture solves it and the original keeps the lead
    score_loader = BatchLoader(*_spike_or_flat(40, 2), [0.05], [0.2], batch_size=16)
    history = search(model, relaxed, loader, val_loader, config, lambda m: m.train(), score_loader=score_loader)
    after = [p.detach() for p in relaxed.architecture_parameters()]
    assert history.epochs[-1].val_accuracy == accuracy(model, score_loader)  # the epoch reports the scored rows
    for epoch in history.epochs:  # where each epoch's seconds went
        parts = [epoch.weight_seconds, epoch.architecture_seconds, epoch.validation_seconds]
        assert epoch.weight_seconds > 0 and epoch.validation_seconds > 0 and sum(parts) <= epoch.seconds
        assert (epoch.architecture_seconds > 0) == architecture_steps
    if not architecture_steps:  # the architecture step off: its parameters never move, bit for bit
        assert all(torch.equal(a, b) for a, b in zip(start, after))
        return
    weights = dict(zip(relaxed.edges["0_1"].names, torch.softmax(relaxed.alphas[0].detach(), 0).tolist()))
    assert weights["max_pool_3x3"] == max(weights.values()) and weights["max_pool_3x3"] > 0.5
    assert [edge["op"] for edge in discretise(relaxed).edges] == ["max_pool_3x3"]


def test_each_search_epoch_scores_a_fixed_seeded_sample_of_the_architecture_half():
    from archrepair._repair.methods.archrepair import SCORE_ROWS, scored_rows

    rows = np.arange(10, 10 + 3 * SCORE_ROWS)
    chosen = scored_rows(rows, seed=0)
    assert len(chosen) == SCORE_ROWS and set(chosen) <= set(rows) and (np.diff(chosen) > 0).all()
    assert np.array_equal(chosen, scored_rows(rows, seed=0)) and not np.array_equal(chosen, scored_rows(rows, seed=1))
    assert np.array_equal(scored_rows(rows[:100], seed=0), rows[:100])


def test_failures_can_be_kept_out_of_the_architecture_half(digits_task):
    from archrepair._repair.methods.archrepair import search_halves
    from archrepair._search import SearchConfig

    task = digits_task
    weights, architecture = search_halves(task, SearchConfig())
    assert (weights < task.repair.num_failures).any() and (architecture < task.repair.num_failures).any()
    weights, architecture = search_halves(task, SearchConfig(failures_in_architecture_split=False))
    assert not (architecture < task.repair.num_failures).any()
    failures = task.fit_indices[task.fit_indices < task.repair.num_failures]
    assert set(failures) <= set(weights) and set(weights) | set(architecture) == set(task.fit_indices)
