"""A procedural frost texture, so that the frost corruption needs no photographs.

The original generator overlays crops of five frost photographs, downscaled to 0.2x without
antialiasing. This texture imitates the statistics of those scaled photographs: per texture a
mean colour and a spread (the standard deviation of brightness), and their texture at the pixel
scale, which is what makes frost hard for a classifier: the mean absolute difference between
neighbouring pixels is about 0.65 of the spread. It mixes fractal cloudiness, thin sharp
needle-like crystals and pixel-level grain. Users who have texture images can pass them instead
(``frost_textures=`` / ``--frost-textures``).
"""

from __future__ import annotations

import numpy as np

from .filters import plasma_fractal

# Mean RGB colours (0..255) and brightness spreads of the original's five scaled photographs
# (the second and third are the same picture): blue ice, white rime twice, grey glass, dark glass.
TINTS = np.array([[78, 149, 166], [201, 205, 214], [201, 205, 214], [138, 153, 165], [112, 123, 135]], dtype=np.float64)
SPREADS = np.array([18, 22, 22, 28, 43], dtype=np.float64)
# Shares of the pattern's variance: smooth cloud, sharp needles, grain (neighbour difference ~0.65 spread).
MIX = (0.55, 0.25, 0.20)


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
    grain = rng.normal(size=(size, size))
    parts = [(part - part.mean()) / (part.std() + 1e-8) for part in (cloud, needles, grain)]
    pattern = sum(np.sqrt(share) * part for share, part in zip(MIX, parts))
    pattern /= pattern.std() + 1e-8
    return np.clip(TINTS[kind] + SPREADS[kind] * pattern[..., None], 0, 255)


def texture_bank(rng: np.random.Generator, size: int = 128) -> list[np.ndarray]:
    """One texture per tint to crop from (made once per call, as the original's five photographs)."""
    return [frost_texture(rng, size, kind) for kind in range(len(TINTS))]


def load_textures(paths: list[str], scale: float = 0.2) -> list[np.ndarray]:
    """Texture images from files, scaled by ``scale`` as the original does with its photographs:
    OpenCV's bilinear ``resize`` (half-pixel centres, and no antialiasing, so a downscaled texture
    keeps its sharp, aliased crystals, which matter to a classifier)."""
    import torch
    from PIL import Image

    textures = []
    for path in paths:
        image = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
        size = (int(round(image.shape[0] * scale)), int(round(image.shape[1] * scale)))
        tensor = torch.from_numpy(image).permute(2, 0, 1)[None]
        resized = torch.nn.functional.interpolate(tensor, size=size, mode="bilinear", align_corners=False, antialias=False)
        textures.append(resized[0].permute(1, 2, 0).round().clamp(0, 255).numpy().astype(np.float64))
    return textures
