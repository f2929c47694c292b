"""The 15 natural corruptions of CIFAR-10-C (Hendrycks and Dietterich, ICLR 2019), reimplemented.

Batched and seeded: the same images, severity and seed give the same output. No ImageMagick or
OpenCV: motion blur (and the snow layer's blur) follow ImageMagick's kernel, the rest uses numpy,
scipy and Pillow. Frost uses a procedural texture unless texture images are given.

Example:
    >>> corrupted = corrupt(images, "fog", severity=3, seed=0)   # images (N, 32, 32, 3) uint8
"""

from __future__ import annotations

import numpy as np

from ...errors import ArchRepairError
from .constants import CIFAR, DETERMINISTIC, NAMES, ORDER
from .functions import FUNCTIONS


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0,
            frost_textures: list[np.ndarray] | None = None) -> np.ndarray:
    """Corrupt ``images`` ``(N, H, W, 3)`` uint8 with corruption ``name`` at ``severity`` (1..5).

    Returns uint8 of the same shape; like the original generator, float results are truncated
    (not rounded) to integers.
    """
    if name not in FUNCTIONS:
        raise ArchRepairError(f"unknown corruption {name!r}; choose one of {', '.join(NAMES)}")
    if not 1 <= severity <= 5:
        raise ArchRepairError(f"severity must be 1..5, got {severity}")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ArchRepairError(f"corruptions take uint8 RGB images (N, H, W, 3), got {images.dtype} {images.shape}")
    rng = np.random.default_rng([seed, NAMES.index(name), severity])
    constant = CIFAR[name][severity - 1]
    if name == "frost":
        out = FUNCTIONS[name](images, constant, rng, frost_textures)
    else:
        out = FUNCTIONS[name](images, constant, rng)
    return np.clip(out, 0, 255).astype(np.uint8)


__all__ = ["CIFAR", "DETERMINISTIC", "NAMES", "ORDER", "corrupt"]
