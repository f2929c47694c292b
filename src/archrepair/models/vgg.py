"""CIFAR-style VGG-16 with BatchNorm; blocks are the five segments ending at a max-pool."""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_model, scaled

VGG16_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG(nn.Module):
    """``features`` (conv, BN, ReLU per number; 2x2 max-pool per "M"), average pool, linear head.

    Input ``(N, in_channels, H, W)`` with H, W >= 32; output logits ``(N, num_classes)``.
    ``block_names`` are slices of ``features`` such as ``features.0:7``.
    """

    def __init__(self, layout: list, num_classes: int = 10, in_channels: int = 3, width: float = 1.0):
        super().__init__()
        layers: list[nn.Module] = []
        blocks: list[str] = []
        start, channels = 0, in_channels
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                blocks.append(f"features.{start}:{len(layers)}")
                start = len(layers)
                continue
            out = scaled(item, width)
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
            channels = out
        self.features = nn.Sequential(*layers)
        self.block_names = tuple(blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model
def vgg16(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> VGG:
    """VGG-16 with BatchNorm (CIFAR variant)."""
    return VGG(VGG16_LAYOUT, num_classes, in_channels, width)
