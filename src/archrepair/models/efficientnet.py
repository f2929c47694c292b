"""CIFAR-style EfficientNet-B0; blocks are its seven stages ``stage1..stage7``."""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_model, scaled

# (expansion, output channels, units, kernel, stride) per stage.
B0_STAGES = [
    (1, 16, 1, 3, 1),
    (6, 24, 2, 3, 2),
    (6, 40, 2, 5, 2),
    (6, 80, 3, 3, 2),
    (6, 112, 3, 5, 1),
    (6, 192, 4, 5, 2),
    (6, 320, 1, 3, 1),
]


class SqueezeExcitation(nn.Module):
    """Channel attention: global pool, reduce, SiLU, expand, sigmoid gate."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = nn.functional.adaptive_avg_pool2d(x, 1)
        gate = torch.sigmoid(self.expand(nn.functional.silu(self.reduce(gate))))
        return x * gate


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, squeeze-excitation, 1x1 project."""

    def __init__(self, in_planes: int, out_planes: int, expansion: int, kernel: int, stride: int):
        super().__init__()
        hidden = in_planes * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [nn.Conv2d(in_planes, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.SiLU()]
        layers += [
            nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.SiLU(),
            SqueezeExcitation(hidden, max(1, int(in_planes * 0.25))),
            nn.Conv2d(hidden, out_planes, 1, bias=False),
            nn.BatchNorm2d(out_planes),
        ]
        self.layers = nn.Sequential(*layers)
        self.residual = stride == 1 and in_planes == out_planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return out + x if self.residual else out


class EfficientNet(nn.Module):
    """EfficientNet-B0 for small images; input ``(N, in_channels, H, W)``, H, W >= 16."""

    block_names = tuple(f"stage{i}" for i in range(1, 8))

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        planes = scaled(32, width)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, planes, 3, 1, 1, bias=False), nn.BatchNorm2d(planes), nn.SiLU()
        )
        for index, (expansion, out, count, kernel, stride) in enumerate(B0_STAGES, start=1):
            out = scaled(out, width)
            units = []
            for s in [stride] + [1] * (count - 1):
                units.append(MBConv(planes, out, expansion, kernel, s))
                planes = out
            self.add_module(f"stage{index}", nn.Sequential(*units))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.linear = nn.Linear(planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stem(x)
        for name in self.block_names:
            out = getattr(self, name)(out)
        return self.linear(self.dropout(torch.flatten(self.pool(out), 1)))


@register_model
def efficientnet_b0(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> EfficientNet:
    """EfficientNet-B0 (CIFAR variant, no 1280-channel head convolution)."""
    return EfficientNet(num_classes, in_channels, width)
