"""Candidate operations of the search space (paper Table 3; DARTS/PC-DARTS operations).

Each builder maps a source node of ``c_in`` channels to a target node of ``c_out`` channels with
an integer ``stride`` (source height / target height). Where channels differ, the operation ends
in (or is) a 1x1 convolution: the "identity CNN layer" of the paper's Table 3. ``affine`` selects
BatchNorm with learnable scale and shift (off during the search, as in DARTS; on in the final block).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import ArchRepairError

CANDIDATES = ("none", "skip_connect", "avg_pool_3x3", "max_pool_3x3", "sep_conv_3x3", "dil_conv_3x3")
ORIGINAL = "original"


class Zero(nn.Module):
    """The ``none`` operation: zeros of the target shape ``(N, c_out, H / stride, W / stride)``."""

    def __init__(self, c_out: int, stride: int) -> None:
        super().__init__()
        self.c_out, self.stride = c_out, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        return x.new_zeros(n, self.c_out, (h + self.stride - 1) // self.stride, (w + self.stride - 1) // self.stride)


class Projection(nn.Sequential):
    """ReLU, 1x1 convolution with stride, BatchNorm: a cheap shape adapter (``skip_connect`` across shapes)."""

    def __init__(self, c_in: int, c_out: int, stride: int, affine: bool) -> None:
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out, affine=affine))


class Pool(nn.Sequential):
    """3x3 average or max pooling with stride (padding 1), a projection if channels change, BatchNorm."""

    def __init__(self, kind: str, c_in: int, c_out: int, stride: int, affine: bool) -> None:
        pool = (nn.AvgPool2d(3, stride, 1, count_include_pad=False) if kind == "avg" else nn.MaxPool2d(3, stride, 1))
        layers: list[nn.Module] = [pool]
        if c_in != c_out:
            layers.append(nn.Conv2d(c_in, c_out, 1, bias=False))
        layers.append(nn.BatchNorm2d(c_out, affine=affine))
        super().__init__(*layers)


class DilConv(nn.Sequential):
    """ReLU, depthwise 3x3 with dilation, pointwise 1x1 to ``c_out``, BatchNorm."""

    def __init__(self, c_in: int, c_out: int, stride: int, dilation: int, affine: bool) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_in, 3, stride, dilation, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked [ReLU, depthwise 3x3, pointwise 1x1, BatchNorm] units; the first carries the stride."""

    def __init__(self, c_in: int, c_out: int, stride: int, affine: bool) -> None:
        super().__init__(DilConv(c_in, c_in, stride, 1, affine), DilConv(c_in, c_out, 1, 1, affine))


def skip_connect(c_in: int, c_out: int, stride: int, affine: bool) -> nn.Module:
    return nn.Identity() if c_in == c_out and stride == 1 else Projection(c_in, c_out, stride, affine)


BUILDERS: dict[str, Callable[[int, int, int, bool], nn.Module]] = {
    "none": lambda c_in, c_out, stride, affine: Zero(c_out, stride),
    "skip_connect": skip_connect,
    "avg_pool_3x3": lambda c_in, c_out, stride, affine: Pool("avg", c_in, c_out, stride, affine),
    "max_pool_3x3": lambda c_in, c_out, stride, affine: Pool("max", c_in, c_out, stride, affine),
    "sep_conv_3x3": SepConv,
    "dil_conv_3x3": lambda c_in, c_out, stride, affine: DilConv(c_in, c_out, stride, 2, affine),
}


def edge_stride(source: tuple[int, int, int] | list[int], target: tuple[int, int, int] | list[int]) -> int:
    """The stride ``s`` of an edge from a ``(C, H, W)`` source node to a target node: every candidate
    maps ``H`` to ``ceil(H / s)`` (3x3 kernels with padding, 1x1 without), so ``s`` is the smallest
    with ``ceil(H / s) == H_target`` and the same for ``W`` (odd sizes included: 7 -> 4 is stride 2)."""
    (_, h_in, w_in), (_, h_out, w_out) = source, target
    for stride in range(1, max(h_in, w_in) + 1):
        if -(-h_in // stride) == h_out and -(-w_in // stride) == w_out:
            return stride
    raise ArchRepairError(f"no stride maps a {h_in}x{w_in} node to a {h_out}x{w_out} node; this block changes its "
                          "feature-map size in a way the search space cannot follow: name another block")


def build_operation(name: str, c_in: int, c_out: int, stride: int, affine: bool = True) -> nn.Module:
    """The candidate ``name`` (one of :data:`CANDIDATES`) for an edge ``c_in -> c_out`` with ``stride``."""
    return BUILDERS[name](c_in, c_out, stride, affine)


def is_parameter_free(name: str) -> bool:
    """Operations that the collapse towards parameter-free choices favours."""
    return name in ("none", "skip_connect", "avg_pool_3x3", "max_pool_3x3")
