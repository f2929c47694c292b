"""A procedural frost texture, so that the frost corruption needs no photographs.

The original generator overlays crops of five frost photographs (scaled to 0.2x). This texture
imitates their statistics: a bright, blue-tinted layer (mean about 160 of 255, standard deviation
about 25) with fractal cloudiness and thin needle-like crystals. Users who have texture images
can pass them instead (``frost_textures=`` / ``--frost-textures``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .filters import plasma_fractal

# Mean RGB colours (0..255) of frost-like overlays: blue-white ice, grey-white rime, tinted glass.
TINTS = np.array([[78, 149, 166], [201, 205, 215], [138, 153, 165], [112, 123, 135], [170, 180, 195]], dtype=np.float64)
SPREADS = np.array([16, 18, 21, 35, 24], dtype=np.float64)


def frost_texture(rng: np.random.Generator, size: int = 128, kind: int = 0) -> np.ndarray:
    """One texture ``(size, size, 3)`` float in 0..255 in tint ``kind`` (0 .. len(TINTS) - 1)."""
    side = 1 << int(np.ceil(np.log2(size)))
    cloud = plasma_fractal(side, 2.0, rng)[:size, :size]
    needles = np.zeros((size, size))
    for _ in range(size // 2):
        length = rng.integers(4, size // 3)
        angle = rng.uniform(0, np.pi)
        y0, x0 = rng.uniform(0, size, 2)
        steps = np.arange(length)
        ys = np.clip((y0 + steps * np.sin(angle)).astype(int), 0, size - 1)
        xs = np.clip((x0 + steps * np.cos(angle)).astype(int), 0, size - 1)
        needles[ys, xs] += rng.uniform(0.5, 1.0)
    needles = ndimage.gaussian_filter(needles, 0.7)
    pattern = 0.6 * (cloud - cloud.mean()) / (cloud.std() + 1e-8) + 0.4 * (needles - needles.mean()) / (needles.std() + 1e-8)
    pattern /= pattern.std() + 1e-8
    return np.clip(TINTS[kind] + SPREADS[kind] * pattern[..., None], 0, 255)


def texture_bank(rng: np.random.Generator, size: int = 128) -> list[np.ndarray]:
    """One texture per tint to crop from (made once per call, as the original's five photographs)."""
    return [frost_texture(rng, size, kind) for kind in range(len(TINTS))]


def load_textures(paths: list[str], scale: float = 0.2) -> list[np.ndarray]:
    """Texture images from files, scaled by ``scale`` (bilinear) as the original does with its photographs."""
    from PIL import Image

    textures = []
    for path in paths:
        image = Image.open(path).convert("RGB")
        size = (int(round(image.width * scale)), int(round(image.height * scale)))
        textures.append(np.asarray(image.resize(size, Image.BILINEAR), dtype=np.float64))
    return textures
