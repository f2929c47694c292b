"""A small block-structured CNN for fast tests and the demo (works from 8x8 pixels up)."""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_model, scaled


def _conv_bn_relu(in_planes: int, out_planes: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False), nn.BatchNorm2d(out_planes), nn.ReLU()]


class SmallCNN(nn.Module):
    """Stem, three blocks of two conv-BN-ReLU layers (blocks 2 and 3 halve the size), linear head.

    Channels ``c, 2c, 4c`` with ``c = 16 * width``. Input ``(N, in_channels, H, W)``, H, W >= 4.
    """

    block_names = ("block1", "block2", "block3")

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        c = scaled(16, width)
        self.stem = nn.Sequential(*_conv_bn_relu(in_channels, c))
        self.block1 = nn.Sequential(*_conv_bn_relu(c, c), *_conv_bn_relu(c, c))
        self.block2 = nn.Sequential(*_conv_bn_relu(c, 2 * c, 2), *_conv_bn_relu(2 * c, 2 * c))
        self.block3 = nn.Sequential(*_conv_bn_relu(2 * c, 4 * c, 2), *_conv_bn_relu(4 * c, 4 * c))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(4 * c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.stem(x))))
        return self.linear(torch.flatten(self.pool(out), 1))


@register_model
def small_cnn(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> SmallCNN:
    """The small block-structured CNN used by the demo and the tests."""
    return SmallCNN(num_classes, in_channels, width)
