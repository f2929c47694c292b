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
    centre crop followed by a centre trim; ``(N, H, W, C)`` (square), computed in float64, returned
    in the input's dtype. The zoom is separable: one axis after the other."""
    height = images.shape[1]
    return _zoom_axis(_zoom_axis(images, height, factor, 1), height, factor, 2).astype(images.dtype)


def zoom_matrix(size: int, factor: float) -> np.ndarray:
    """The ``(size, size)`` matrix ``R`` of :func:`clipped_zoom` along one axis: for a square image
    ``X`` (one channel), ``clipped_zoom(X) == R @ X @ R.T`` (the zoom is linear and separable)."""
    identity = np.eye(size)[None, :, :, None]  # column j of R is the zoom of the unit vector e_j
    return _zoom_axis(identity, size, factor, 1)[0, :, :, 0]


def _zoom_axis(images: np.ndarray, height: int, factor: float, axis: int) -> np.ndarray:
    """:func:`clipped_zoom` along ``axis`` only (float64): crop the centre ``ceil(height / factor)``
    samples, resize them to ``round(crop * factor)``, trim the centre ``height``."""
    crop = int(np.ceil(height / factor))
    top = (height - crop) // 2
    size = int(round(crop * factor))
    trim = (size - height) // 2
    cropped = np.take(images, np.arange(top, top + crop), axis).astype(np.float64)
    return np.take(_linear_resize(cropped, size, axis), np.arange(trim, trim + height), axis)


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
    pixels = images.reshape(n * height * width_px, -1)
    base = np.arange(n)[:, None, None] * (height * width_px)
    out = np.zeros(images.shape, dtype=np.float64)
    for tap, weight in enumerate(weights):  # one flat gather per tap keeps memory at one image batch
        out += weight * pixels[base + ys[:, tap] * width_px + xs[:, tap]]
    return out


def plasma_fractal(size: int, decay: float, rng: np.random.Generator, count: int | None = None) -> np.ndarray:
    """Diamond-square fractal noise ``(size, size)`` in [0, 1] (``size`` a power of two), or
    ``(count, size, size)`` independent ones; the random perturbation starts at 100 and is divided
    by ``decay`` at every halving of the step."""
    grid = np.zeros((count or 1, size, size))
    step, wobble = size, 100.0

    def wobbled_mean(total: np.ndarray) -> np.ndarray:
        return total / 4 + wobble * rng.uniform(-wobble, wobble, total.shape)

    while step >= 2:
        half = step // 2
        corners = grid[:, 0:size:step, 0:size:step]
        square = corners + np.roll(corners, -1, axis=1)
        square = square + np.roll(square, -1, axis=2)
        grid[:, half:size:step, half:size:step] = wobbled_mean(square)
        centres = grid[:, half:size:step, half:size:step]
        corners = grid[:, 0:size:step, 0:size:step]
        left = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2)
        grid[:, 0:size:step, half:size:step] = wobbled_mean(left)
        top = centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1)
        grid[:, half:size:step, 0:size:step] = wobbled_mean(top)
        step //= 2
        wobble /= decay
    grid -= grid.min(axis=(1, 2), keepdims=True)
    grid /= grid.max(axis=(1, 2), keepdims=True)
    return grid if count is not None else grid[0]


def affine_coordinates(source: np.ndarray, targets: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each output pixel reads from under the affine maps taking the three ``(x, y)`` points
    ``source`` ``(3, 2)`` to ``targets`` ``(N, 3, 2)`` (OpenCV's getAffineTransform + warpAffine).
    Returns source rows and columns, each ``(N, H, W)``."""
    homogeneous = np.hstack([source, np.ones((3, 1), np.float32)]).astype(np.float64)
    forward = np.linalg.solve(homogeneous[None], targets.astype(np.float64)).transpose(0, 2, 1)  # (N, 2, 3)
    bottom = np.broadcast_to(np.array([0.0, 0.0, 1.0]), (len(targets), 1, 3))
    inverse = np.linalg.inv(np.concatenate([forward, bottom], 1))[:, :2]  # (N, 2, 3)
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    src_x, src_y = (inverse @ points).reshape(len(targets), 2, height, width).transpose(1, 0, 2, 3)
    return src_y, src_x


def bilinear_sample(images: np.ndarray, rows: np.ndarray, cols: np.ndarray, mode: str) -> np.ndarray:
    """``images`` ``(N, H, W, C)`` read at fractional ``rows`` and ``cols`` ``(N, H', W')`` with
    bilinear weights, as scipy's ``map_coordinates(order=1)`` per image and channel. Outside the
    image, ``mode`` ``"mirror"`` reflects about the edge pixels (OpenCV's reflect-101) and
    ``"reflect"`` about the edges (the edge pixel repeats)."""
    n, height, width, _ = images.shape
    pixels = images.reshape(n * height * width, -1)
    base = np.arange(n)[:, None, None] * (height * width)
    row0, col0 = np.floor(rows), np.floor(cols)
    row_weight, col_weight = (rows - row0)[..., None], (cols - col0)[..., None]
    row0, col0 = row0.astype(np.int64), col0.astype(np.int64)
    r0, r1 = base + _fold(row0, height, mode) * width, base + _fold(row0 + 1, height, mode) * width
    c0, c1 = _fold(col0, width, mode), _fold(col0 + 1, width, mode)
    top = pixels[r0 + c0] * (1 - col_weight) + pixels[r0 + c1] * col_weight
    bottom = pixels[r1 + c0] * (1 - col_weight) + pixels[r1 + c1] * col_weight
    return top * (1 - row_weight) + bottom * row_weight


def _fold(index: np.ndarray, size: int, mode: str) -> np.ndarray:
    """Integer positions mapped into ``0 .. size - 1`` by the boundary ``mode`` (see :func:`bilinear_sample`)."""
    if size == 1:
        return np.zeros_like(index)
    if mode == "mirror":
        period = 2 * size - 2
        index = np.mod(index, period)
        return np.where(index >= size, period - index, index)
    period = 2 * size
    index = np.mod(index, period)
    return np.where(index >= size, period - 1 - index, index)
