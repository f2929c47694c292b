"""CIFAR-style ResNets (no max-pool in the stem); blocks are the stages ``layer1..layer4``."""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_model, scaled


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut; ``(N, C_in, H, W) -> (N, C_out, H/s, W/s)``."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4) with a shortcut."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + self.shortcut(x))


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    if stride == 1 and in_planes == out_planes:
        return nn.Sequential()
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, 1, stride, bias=False), nn.BatchNorm2d(out_planes)
    )


class ResNet(nn.Module):
    """ResNet for small images: 3x3 stem, four stages, global average pool, linear head.

    Input ``(N, in_channels, H, W)`` with H, W >= 8 (32 and 64 are the usual sizes);
    output logits ``(N, num_classes)``.
    """

    block_names = ("layer1", "layer2", "layer3", "layer4")

    def __init__(
        self,
        unit: type[BasicBlock] | type[Bottleneck],
        num_units: list[int],
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        widths = [scaled(c, width) for c in (64, 128, 256, 512)]
        self.in_planes = widths[0]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1 = self._stage(unit, widths[0], num_units[0], 1)
        self.layer2 = self._stage(unit, widths[1], num_units[1], 2)
        self.layer3 = self._stage(unit, widths[2], num_units[2], 2)
        self.layer4 = self._stage(unit, widths[3], num_units[3], 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(widths[3] * unit.expansion, num_classes)

    def _stage(self, unit, planes: int, count: int, stride: int) -> nn.Sequential:
        units = []
        for s in [stride] + [1] * (count - 1):
            units.append(unit(self.in_planes, planes, s))
            self.in_planes = planes * unit.expansion
        return nn.Sequential(*units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(torch.flatten(self.pool(out), 1))


@register_model
def resnet18(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> ResNet:
    """ResNet-18: [2, 2, 2, 2] basic units (CIFAR variant)."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, in_channels, width)


@register_model
def resnet50(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> ResNet:
    """ResNet-50: [3, 4, 6, 3] bottleneck units (CIFAR variant)."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_channels, width)


@register_model
def resnet101(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> ResNet:
    """ResNet-101: [3, 4, 23, 3] bottleneck units (CIFAR variant)."""
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, in_channels, width)
