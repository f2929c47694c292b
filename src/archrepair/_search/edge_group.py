"""Mixed edges that leave one node, computed together (the cost of a relaxed step, #13).

The edges ``(i, j1), (i, j2), ...`` of a relaxed block read the same node ``i``; where they have
the same shapes they hold the same candidate modules with different weights. Rather than one
small convolution per operation per edge (on 2 CPU cores each call costs mostly its overhead),
each operation runs once for the whole group:

* parameter-free layers (ReLU, pooling) on the shared input run once for all edges;
* from the first layer with parameters on, the edges' copies of the input are stacked along the
  channels, ``(N, E * C, H, W)``, and a convolution with ``groups`` becomes one convolution with
  ``E * groups`` groups and the edges' kernels concatenated: each edge's block of channels sees
  only its own kernel, which is exactly the per-edge convolution;
* BatchNorm is per channel, so one call on the stacked channels with the edges' statistics
  concatenated is exact; the updated running statistics are written back to each edge's module.

The gradients reach each edge's own parameters through the concatenation, so the modules, their
state dicts and discretisation are those of :class:`~archrepair._search.relaxed.MixedEdge`.
A layer this does not know runs per edge (the generic, slower path).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .operations import ORIGINAL

_SHARED_SAFE = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.Identity)


def group_key(edge: nn.Module) -> tuple:
    """Edges leaving one node with equal keys hold candidate modules of the same shapes and run
    together (whether an edge also has an original module does not matter: it runs per edge)."""
    return (edge.split, edge.c_out, edge.stride, edge.partial, tuple(n for n in edge.names if n != ORIGINAL))


def mixed_outputs(edges: Sequence[nn.Module], x: torch.Tensor, weights: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``sum_o w_e[o] * op_o(x)`` (plus the partial-channel bypass and the original module, if
    any) for every edge ``e`` of ``edges``, which all read ``x`` ``(N, c_in, H, W)`` and share
    :func:`group_key`; ``weights[e]`` is the softmax over edge ``e``'s ``names``. Returns one
    tensor ``(N, c_out, ceil(H / stride), ceil(W / stride))`` per edge."""
    first, count = edges[0], len(edges)
    candidates = [(index, name) for index, name in enumerate(first.names) if name not in ("none", ORIGINAL)]
    columns = [index for index, _ in candidates]
    mixed = None
    if candidates:
        share = torch.stack([w[columns] for w in weights]).T.reshape(len(columns), 1, count, 1, 1, 1)
        for position, (_, name) in enumerate(candidates):
            output, stacked = _run_together([edge.ops[name] for edge in edges], x[:, : first.split])
            term = share[position] * output.unflatten(1, (count if stacked else 1, -1))  # (N, E, C, H', W')
            mixed = term if mixed is None else mixed + term
        if first.partial:
            bypass = first.bypass(x[:, first.split:]).unsqueeze(1)
            mixed = torch.cat([mixed, share.sum(0) * bypass], 2)
    if mixed is None:
        n, _, h, w = x.shape
        outputs = [x.new_zeros(n, first.c_out, -(-h // first.stride), -(-w // first.stride))] * count
    else:
        outputs = list(mixed.unbind(1))
    return [out + w[edge.names.index(ORIGINAL)] * edge.original(x) if edge.original is not None else out
            for out, edge, w in zip(outputs, edges, weights)]


def _run_together(modules: Sequence[nn.Module], x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Every module of ``modules`` (same structure, own parameters) on ``x`` ``(N, C, H, W)``.
    Returns ``(output, stacked)``: one tensor ``(N, C', H', W')`` that every module would give
    (``stacked`` False: no parameters touched it) or the modules' outputs stacked along the
    channels, ``(N, E * C', H', W')``."""
    layers = [_leaves(module) for module in modules]
    if any([type(layer) for layer in sequence] != [type(layer) for layer in layers[0]] for sequence in layers):
        return torch.cat([module(x) for module in modules], 1), True  # not the same structure: one by one
    stacked = False
    for group in zip(*layers):
        kind = group[0]
        if isinstance(kind, _SHARED_SAFE) and not stacked:
            x = kind(x)
            continue
        if not stacked and isinstance(kind, nn.Conv2d) and kind.groups == 1 and kind.padding_mode == "zeros":
            x = _stacked_conv(group, x, 1)  # every kernel on the shared input: one dense convolution
        else:
            if not stacked and len(modules) > 1:
                x = x.repeat(1, len(modules), 1, 1)
            x = _stacked_layer(group, x)
        stacked = True
    return x, stacked


def _leaves(module: nn.Module) -> list[nn.Module]:
    """The layers a (nested) ``nn.Sequential`` applies in order; any other module is one leaf."""
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
        return [leaf for child in module for leaf in _leaves(child)]
    return [module]


def _stacked_layer(group: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """One layer of each edge on its own block of channels of ``x`` ``(N, E * C, H, W)``."""
    count, kind = len(group), group[0]
    if isinstance(kind, nn.Conv2d) and kind.padding_mode == "zeros":
        return _stacked_conv(group, x, kind.groups * count)
    if isinstance(kind, nn.BatchNorm2d):
        return _stacked_batch_norm(group, x)
    if isinstance(kind, _SHARED_SAFE):
        return kind(x)
    return torch.cat([layer(chunk) for layer, chunk in zip(group, x.chunk(count, 1))], 1)


def _stacked_conv(group: Sequence[nn.Conv2d], x: torch.Tensor, groups: int) -> torch.Tensor:
    """The edges' convolutions (same shapes) as one, their kernels concatenated: on stacked
    channels with ``groups = E * groups``, or on a shared input with ``groups = 1`` (dense kernels)."""
    kind = group[0]
    weight = torch.cat([layer.weight for layer in group]) if len(group) > 1 else kind.weight
    bias = None if kind.bias is None else torch.cat([layer.bias for layer in group])
    if _samples_every_dilation(kind):  # the same sums on the pixels it reads, without the slow dilated kernel
        x = x[:, :, :: kind.dilation[0], :: kind.dilation[1]]
        padding = tuple(size // 2 for size in kind.kernel_size)
        return F.conv2d(x, weight, bias, 1, padding, 1, groups)
    return F.conv2d(x, weight, bias, kind.stride, kind.padding, kind.dilation, groups)


def _samples_every_dilation(conv: nn.Conv2d) -> bool:
    """A convolution with stride = dilation = ``d > 1`` and "same" padding ``d (k - 1) / 2`` (odd
    ``k``) reads only the pixels ``x[d * m]``: output ``o`` sums ``w[t] x[d (o + t) - p]``, i.e.
    ``w[t] x_d[o + t - (k - 1) / 2]`` on ``x_d = x[::d]``, a plain stride-1 convolution of ``x_d``
    with padding ``(k - 1) / 2`` (the same ``ceil(H / d)`` outputs). On CPU the dilated kernel costs
    several times the plain one (the stride-2 ``dil_conv_3x3`` of a reducing edge: about 6x)."""
    return isinstance(conv.padding, tuple) and all(
        d > 1 and s == d and k % 2 == 1 and p == d * (k - 1) // 2
        for d, s, k, p in zip(conv.dilation, conv.stride, conv.kernel_size, conv.padding))


def _stacked_batch_norm(group: Sequence[nn.BatchNorm2d], x: torch.Tensor) -> torch.Tensor:
    """BatchNorm of every edge at once: per channel, so exactly each edge's own; running
    statistics updated as ``nn.BatchNorm2d`` updates them and written back to each module."""
    kind = group[0]
    tracked = kind.running_mean is not None
    use_batch = kind.training or not tracked
    factor = 0.0
    if kind.training and tracked:
        for layer in group:
            layer.num_batches_tracked.add_(1)
        factor = kind.momentum if kind.momentum is not None else 1.0 / float(kind.num_batches_tracked)

    def joined(name: str) -> torch.Tensor | None:
        values = [getattr(layer, name) for layer in group]
        return None if values[0] is None else torch.cat(values)

    mean, var = (joined("running_mean"), joined("running_var")) if tracked else (None, None)
    output = F.batch_norm(x, mean, var, joined("weight"), joined("bias"), use_batch, factor, kind.eps)
    if kind.training and tracked:
        with torch.no_grad():
            for layer, new_mean, new_var in zip(group, mean.chunk(len(group)), var.chunk(len(group))):
                layer.running_mean.copy_(new_mean)
                layer.running_var.copy_(new_var)
    return output
