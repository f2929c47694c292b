"""Presets of Hendrycks and Dietterich's generators, and tables derived from the registry.

Each corruption's constants live beside its function (``functions.py``, :mod:`.registry`). The
procedures of the two generators are the same except where ``PRESETS`` says: Tiny-ImageNet-C
scales its frost photographs by 0.3 (CIFAR: 0.2).
"""

from . import functions  # noqa: F401  (registers the corruptions)
from .registry import get_corruption, list_corruptions

CIFAR = {name: get_corruption(name).constants["cifar"] for name in list_corruptions()}
TINY_IMAGENET = {name: get_corruption(name).constants["tiny-imagenet"] for name in list_corruptions()}

# Constant sets by name, with the image size each was made for and the scale of frost photographs.
PRESETS = {
    "cifar": {"constants": CIFAR, "size": 32, "frost_scale": 0.2},
    "tiny-imagenet": {"constants": TINY_IMAGENET, "size": 64, "frost_scale": 0.3},
}


def preset_for(height: int) -> str:
    """The preset made for images closest in size to ``height`` pixels (CIFAR up to 48, else Tiny-ImageNet)."""
    return min(PRESETS, key=lambda name: abs(PRESETS[name]["size"] - height))


# The paper's order and its abbreviations (GB is glass blur).
ORDER = [(name, get_corruption(name).abbreviation) for name in list_corruptions()]
NAMES = [name for name, _ in ORDER]
DETERMINISTIC = {name for name in list_corruptions() if get_corruption(name).deterministic}
