"""Small image-processing pieces the corruptions share: kernels, zoom, colour spaces, motion blur.

Images are float arrays ``(N, H, W, C)``; these reimplement what the original generator took from
OpenCV, scikit-image and ImageMagick, with numpy and scipy.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def gaussian_kernel_1d(size: int, sigma: float) -> np.ndarray:
    """OpenCV's ``getGaussianKernel``: ``exp(-(i - (size-1)/2)^2 / (2 sigma^2))``, normalised."""
    offsets = np.arange(size) - (size - 1) / 2
    kernel = np.exp(-(offsets**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The defocus kernel: an aliased disk on a 17x17 grid (radius <= 8) smoothed by a 3x3 Gaussian
    of sigma ``alias_blur`` (reflect-101 borders), float32 as in the original."""
    size = 8 if radius <= 8 else int(radius)
    ksize = 3 if radius <= 8 else 5
    grid = np.arange(-size, size + 1)
    xs, ys = np.meshgrid(grid, grid)
    disk = ((xs**2 + ys**2) <= radius**2).astype(np.float32)
    disk /= disk.sum()
    gauss = gaussian_kernel_1d(ksize, alias_blur).astype(np.float32)
    blurred = ndimage.correlate1d(disk, gauss, axis=0, mode="mirror")
    return ndimage.correlate1d(blurred, gauss, axis=1, mode="mirror").astype(np.float32)


def clipped_zoom(images: np.ndarray, factor: float) -> np.ndarray:
    """Zoom into the centre by ``factor`` keeping the size, as scipy's ``zoom(order=1)`` of the
    centre crop followed by a centre trim; ``(N, H, W, C)``, computed in float64, returned in the
    input's dtype."""
    height = images.shape[1]
    crop = int(np.ceil(height / factor))
    top = (height - crop) // 2
    size = int(round(crop * factor))
    zoomed = _linear_resize(_linear_resize(images[:, top : top + crop, top : top + crop].astype(np.float64), size, 1), size, 2)
    trim = (size - height) // 2
    return zoomed[:, trim : trim + height, trim : trim + height].astype(images.dtype)


def _linear_resize(images: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Order-1 spline resize of one axis to ``size`` samples, corners aligned (scipy's zoom grid)."""
    length = images.shape[axis]
    coords = np.arange(size) * ((length - 1) / (size - 1)) if size > 1 else np.zeros(1)
    low = np.floor(coords).astype(np.int64)
    high = np.minimum(low + 1, length - 1)
    weight = (coords - low).reshape([-1 if a == axis else 1 for a in range(images.ndim)])
    return np.take(images, low, axis) * (1 - weight) + np.take(images, high, axis) * weight


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """scikit-image's ``rgb2hsv`` for values in [0, 1] (float64)."""
    value = rgb.max(-1)
    delta = value - rgb.min(-1)
    saturation = np.divide(delta, value, out=np.zeros_like(value), where=value != 0)
    safe = np.where(delta == 0, 1, delta)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    hue = np.where(b == value, 4 + (r - g) / safe, 0.0)
    hue = np.where(g == value, 2 + (b - r) / safe, hue)
    hue = np.where(r == value, (g - b) / safe, hue)
    hue = np.where(delta == 0, 0.0, (hue / 6) % 1)
    return np.stack([hue, saturation, value], -1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """scikit-image's ``hsv2rgb``."""
    hue, saturation, value = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    sector = np.floor(hue * 6)
    fraction = hue * 6 - sector
    sector = sector.astype(np.int64) % 6
    p = value * (1 - saturation)
    q = value * (1 - fraction * saturation)
    t = value * (1 - (1 - fraction) * saturation)
    table = np.stack([
        np.stack([value, t, p], -1), np.stack([q, value, p], -1), np.stack([p, value, t], -1),
        np.stack([p, q, value], -1), np.stack([t, p, value], -1), np.stack([value, p, q], -1),
    ])
    return np.take_along_axis(table, sector[None, ..., None].repeat(3, -1), 0)[0]


def motion_blur(images: np.ndarray, radius: float, sigma: float, angles: np.ndarray) -> np.ndarray:
    """ImageMagick's ``-motion-blur radius x sigma + angle``: a one-sided Gaussian streak.

    Tap ``i`` (0 .. 2 ceil(radius)) has weight ``exp(-i^2 / (2 sigma^2))`` (normalised) and reads the
    pixel ``i`` steps along the angle (rounded to the grid); pixels outside repeat the edge.
    ``images`` ``(N, H, W, C)``, ``angles`` in degrees ``(N,)``.
    """
    width = int(2 * np.ceil(radius) + 1)
    taps = np.arange(width)
    weights = np.exp(-(taps**2) / (2 * sigma**2))
    weights /= weights.sum()
    radians = np.deg2rad(angles)[:, None]
    step_x = np.ceil(taps[None] * np.cos(radians) - 0.5).astype(np.int64)  # (N, width); angle 0: horizontal
    step_y = np.ceil(taps[None] * np.sin(radians) - 0.5).astype(np.int64)
    n, height, width_px, _ = images.shape
    rows = np.arange(height)[None, None, :, None]
    cols = np.arange(width_px)[None, None, None, :]
    ys = np.clip(rows + step_y[:, :, None, None], 0, height - 1)  # (N, taps, H, 1)
    xs = np.clip(cols + step_x[:, :, None, None], 0, width_px - 1)  # (N, taps, 1, W)
    batch = np.arange(n)[:, None, None, None]
    gathered = images[batch, ys, xs]  # (N, taps, H, W, C)
    return np.einsum("ntHWc,t->nHWc", gathered, weights)


def plasma_fractal(size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square fractal noise ``(size, size)`` in [0, 1] (``size`` a power of two); the random
    perturbation starts at 100 and is divided by ``decay`` at every halving of the step."""
    grid = np.zeros((size, size))
    step, wobble = size, 100.0

    def wobbled_mean(total: np.ndarray) -> np.ndarray:
        return total / 4 + wobble * rng.uniform(-wobble, wobble, total.shape)

    while step >= 2:
        half = step // 2
        corners = grid[0:size:step, 0:size:step]
        square = corners + np.roll(corners, -1, axis=0)
        square = square + np.roll(square, -1, axis=1)
        grid[half:size:step, half:size:step] = wobbled_mean(square)
        centres = grid[half:size:step, half:size:step]
        corners = grid[0:size:step, 0:size:step]
        left = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        grid[0:size:step, half:size:step] = wobbled_mean(left)
        top = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        grid[half:size:step, 0:size:step] = wobbled_mean(top)
        step //= 2
        wobble /= decay
    grid -= grid.min()
    return grid / grid.max()


def affine_warp(image: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Warp ``image`` ``(H, W, C)`` by the affine map taking the three ``(x, y)`` points ``source`` to
    ``target`` (bilinear, reflect-101 borders), as OpenCV's getAffineTransform + warpAffine."""
    height, width, channels = image.shape
    homogeneous = np.hstack([source, np.ones((3, 1), np.float32)]).astype(np.float64)
    forward = np.linalg.solve(homogeneous, target.astype(np.float64)).T  # (2, 3): target = forward @ [x, y, 1]
    inverse = np.linalg.inv(np.vstack([forward, [0, 0, 1]]))[:2]
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    src_x, src_y = (inverse @ points).reshape(2, height, width)
    out = np.empty_like(image)
    for channel in range(channels):
        out[..., channel] = ndimage.map_coordinates(image[..., channel], [src_y, src_x], order=1, mode="mirror")
    return out
