"""CIFAR-style DenseNet-121; each block is one bottleneck's two convolutions (``dense1.0.layers``)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .registry import register_model, scaled


class DenseUnit(nn.Module):
    """Pre-activation bottleneck whose new features are concatenated in front of its input.

    ``layers`` maps ``(N, C, H, W)`` to ``(N, growth, H, W)``; the unit returns
    ``(N, growth + C, H, W)``. A repair of ``layers`` must keep emitting ``growth`` channels.
    """

    def __init__(self, in_planes: int, growth: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.BatchNorm2d(in_planes),
            nn.ReLU(),
            nn.Conv2d(in_planes, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth),
            nn.ReLU(),
            nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.layers(x), x], 1)


class Transition(nn.Module):
    """BN, ReLU, 1x1 convolution, 2x2 average pool: halves channels and size."""

    def __init__(self, in_planes: int, out_planes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, out_planes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.avg_pool2d(self.conv(torch.relu(self.bn(x))), 2)


class DenseNet(nn.Module):
    """DenseNet-BC for small images; input ``(N, in_channels, H, W)`` with H, W >= 8."""

    def __init__(
        self,
        num_units: list[int],
        growth: int = 32,
        reduction: float = 0.5,
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        growth = scaled(growth, width, minimum=2)
        planes = 2 * growth
        self.conv1 = nn.Conv2d(in_channels, planes, 3, padding=1, bias=False)
        names: list[str] = []
        for stage, count in enumerate(num_units, start=1):
            units = []
            for _ in range(count):
                units.append(DenseUnit(planes, growth))
                planes += growth
            self.add_module(f"dense{stage}", nn.Sequential(*units))
            names += [f"dense{stage}.{i}.layers" for i in range(count)]
            if stage < len(num_units):
                out = int(math.floor(planes * reduction))
                self.add_module(f"trans{stage}", Transition(planes, out))
                planes = out
        self.num_stages = len(num_units)
        self.block_names = tuple(names)
        self.bn = nn.BatchNorm2d(planes)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        for stage in range(1, self.num_stages + 1):
            out = getattr(self, f"dense{stage}")(out)
            if stage < self.num_stages:
                out = getattr(self, f"trans{stage}")(out)
        out = torch.relu(self.bn(out))
        return self.linear(torch.flatten(self.pool(out), 1))


@register_model
def densenet121(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> DenseNet:
    """DenseNet-121: growth rate 32 (times ``width``), dense stages [6, 12, 24, 16]."""
    return DenseNet([6, 12, 24, 16], 32, 0.5, num_classes, in_channels, width)
