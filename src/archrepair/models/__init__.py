"""Model zoo (CIFAR-style VGG/ResNet/DenseNet/EfficientNet and a small CNN), registry, block specs."""

from . import densenet, efficientnet, resnet, small_cnn, vgg  # noqa: F401  (register the builders)
from .blocks import block_shapes, default_blocks, get_block, replace_block, resolve_blocks
from .registry import get_model, list_models, register_model

__all__ = [
    "block_shapes",
    "default_blocks",
    "get_block",
    "get_model",
    "list_models",
    "register_model",
    "replace_block",
    "resolve_blocks",
]
