"""The 15 corruptions. Each takes images ``(N, H, W, 3)`` uint8, a severity constant and a numpy
``Generator``, and returns float images in 0..255 (the caller truncates to uint8, as the original)."""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image
from scipy import ndimage

from . import filters
from .registry import register_corruption


@register_corruption("GN", deterministic=False,
                     cifar=[0.04, 0.06, 0.08, 0.09, 0.1],
                     tiny_imagenet=[0.04, 0.08, 0.12, 0.15, 0.18])
def gaussian_noise(x, c, rng):
    x = x / 255.0
    return np.clip(x + rng.normal(size=x.shape, scale=c), 0, 1) * 255


@register_corruption("SN", deterministic=False,
                     cifar=[500, 250, 100, 75, 50],
                     tiny_imagenet=[250, 100, 50, 30, 15])
def shot_noise(x, c, rng):
    x = x / 255.0
    return np.clip(rng.poisson(x * c) / c, 0, 1) * 255


@register_corruption("IN", deterministic=False,
                     cifar=[0.01, 0.02, 0.03, 0.05, 0.07],
                     tiny_imagenet=[0.01, 0.02, 0.05, 0.08, 0.14])
def impulse_noise(x, c, rng):
    """Salt and pepper on a share ``c`` of all values (channels drawn independently), half each."""
    x = x / 255.0
    hit = rng.random(x.shape) < c
    salt = rng.random(x.shape) < 0.5
    return np.clip(np.where(hit, salt.astype(np.float64), x), 0, 1) * 255


@register_corruption("DB", deterministic=True,
                     cifar=[(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
                     tiny_imagenet=[(0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)])
def defocus_blur(x, c, rng):
    kernel = filters.disk_kernel(*c)
    x = x / 255.0
    out = ndimage.correlate(x, kernel[None, :, :, None], mode="mirror")
    return np.clip(out, 0, 1) * 255


@register_corruption("GB", deterministic=False,
                     cifar=[(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],
                     tiny_imagenet=[(0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)])
def glass_blur(x, c, rng):
    """Gaussian blur, local pixel copies (pixel (h, w) takes the value at (h + dy, w + dx), dx, dy
    in {-delta .. 0}, for h, w from size - delta down to delta + 1), Gaussian blur again."""
    sigma, delta, iterations = c
    blur = lambda images: ndimage.gaussian_filter(images, (0, sigma, sigma, 0), mode="nearest", truncate=4.0)  # noqa: E731
    x = np.trunc(blur(x / 255.0) * 255)  # the original goes back to 8 bits after the first blur
    n, size = x.shape[0], x.shape[1]
    span = np.arange(size - delta, delta, -1)  # the rows and columns the original loop visits (31 .. 2)
    batch = np.arange(n)[:, None, None]
    for _ in range(iterations):
        offsets = rng.integers(-delta, delta, size=(n, len(span), len(span), 2))
        rows = span[None, :, None] + offsets[..., 1]
        cols = span[None, None, :] + offsets[..., 0]
        moved = x[batch, rows, cols]
        x[batch, span[None, :, None], span[None, None, :]] = moved
    return np.clip(blur(x / 255.0), 0, 1) * 255


@register_corruption("MB", deterministic=False,
                     cifar=[(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
                     tiny_imagenet=[(10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)])
def motion_blur(x, c, rng):
    radius, sigma = c
    angles = rng.uniform(-45, 45, size=len(x))
    return np.clip(filters.motion_blur(x.astype(np.float64), radius, sigma, angles), 0, 255)


@register_corruption("ZB", deterministic=True,
                     cifar=[1.06, 1.11, 1.16, 1.21, 1.26],
                     tiny_imagenet=[1.06, 1.11, 1.16, 1.21, 1.26])
def zoom_blur(x, c, rng):
    """Mean of the image and its centre zooms by 1, 1.01, ... (< ``c``). Each zoom is linear and
    separable (``R @ X @ R.T``, :func:`filters.zoom_matrix`), so the whole mean is one linear map
    of the flattened image, ``kron(R, R)`` summed over the zooms, applied as one float32 matrix
    product in torch (the original also sums float32 zooms)."""
    import torch

    n, height, width, channels = x.shape
    if height != width:
        raise ValueError(f"zoom blur needs square images, got {height}x{width}")
    operator = torch.from_numpy(_zoom_blur_operator(height, c))
    flat = torch.from_numpy((x / 255.0).astype(np.float32)).permute(0, 3, 1, 2).reshape(n * channels, -1)
    out = (flat @ operator).reshape(n, channels, height, width).permute(0, 2, 3, 1).numpy()
    return np.clip(out, 0, 1) * 255


@functools.lru_cache(maxsize=8)
def _zoom_blur_operator(size: int, stop: float) -> np.ndarray:
    """The transposed ``(size², size²)`` float32 map of :func:`zoom_blur` (built once per image size
    and severity, not for every chunk of images)."""
    factors = np.arange(1, stop, 0.01)
    operator = np.eye(size * size)
    for factor in factors:
        zoom = filters.zoom_matrix(size, factor)
        operator += np.kron(zoom, zoom)
    return (operator / (len(factors) + 1)).T.astype(np.float32)


@register_corruption("SNW", deterministic=False,
                     cifar=[(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)],
                     tiny_imagenet=[(0.1, 0.2, 1, 0.6, 8, 3, 0.8), (0.1, 0.2, 1, 0.5, 10, 4, 0.8), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6)])
def snow(x, c, rng):
    mean, std, zoom, threshold, radius, sigma, mix = c
    n, height, width, _ = x.shape
    x = x.astype(np.float32) / 255.0
    layer = rng.normal(size=(n, height, width, 1), loc=mean, scale=std)
    layer = filters.clipped_zoom(layer, zoom)
    layer[layer < threshold] = 0
    layer = (np.clip(layer, 0, 1) * 255).astype(np.uint8).astype(np.float64)  # the 8-bit snow image
    layer = filters.motion_blur(layer, radius, sigma, rng.uniform(-135, -45, size=n))
    layer = np.round(layer) / 255.0  # ImageMagick writes 8-bit pixels back
    gray = (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])[..., None]
    x = mix * x + (1 - mix) * np.maximum(x, gray * 1.5 + 0.5)
    return np.clip(x + layer + layer[:, ::-1, ::-1], 0, 1) * 255


@register_corruption("FRO", deterministic=False,
                     cifar=[(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],
                     tiny_imagenet=[(1, 0.3), (0.9, 0.4), (0.8, 0.45), (0.75, 0.5), (0.7, 0.55)])
def frost(x, c, rng, textures):
    """``c0 * image + c1 * frost``: a random crop of one of ``textures`` (RGB arrays in 0..255,
    already scaled; the procedural ones of :func:`textures.texture_bank` unless the user gives files)."""
    image_weight, frost_weight = c
    n, height, width, _ = x.shape
    crops = np.empty(x.shape, dtype=np.float64)
    for i in range(n):
        texture = textures[rng.integers(len(textures))]
        top = rng.integers(0, texture.shape[0] - height)
        left = rng.integers(0, texture.shape[1] - width)
        crops[i] = texture[top : top + height, left : left + width]
    return np.clip(image_weight * x + frost_weight * crops, 0, 255)


@register_corruption("FOG", deterministic=False,
                     cifar=[(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],
                     tiny_imagenet=[(0.4, 3), (0.7, 3), (1, 2.5), (1.5, 2), (2, 1.75)])
def fog(x, c, rng):
    strength, decay = c
    x = x / 255.0
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    size = 1 << int(np.ceil(np.log2(max(x.shape[1:3]))))
    fractal = filters.plasma_fractal(size, decay, rng, count=len(x))
    x = x + strength * fractal[:, : x.shape[1], : x.shape[2], None]
    return np.clip(x * peak / (peak + strength), 0, 1) * 255


@register_corruption("BR", deterministic=True,
                     cifar=[0.05, 0.1, 0.15, 0.2, 0.3],
                     tiny_imagenet=[0.1, 0.2, 0.3, 0.4, 0.5])
def brightness(x, c, rng):
    hsv = filters.rgb_to_hsv(x / 255.0)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return np.clip(filters.hsv_to_rgb(hsv), 0, 1) * 255


@register_corruption("CTR", deterministic=True,
                     cifar=[0.75, 0.5, 0.4, 0.3, 0.15],
                     tiny_imagenet=[0.4, 0.3, 0.2, 0.1, 0.05])
def contrast(x, c, rng):
    x = x / 255.0
    means = x.mean(axis=(1, 2), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


@register_corruption("ET", deterministic=False,
                     cifar=[(0, 0, 2.56), (1.6, 6.4, 2.24), (2.56, 1.92, 1.92), (3.2, 1.28, 1.6), (3.2, 0.96, 0.96)],
                     tiny_imagenet=[(0, 0, 5.12), (3.2, 19.2, 3.84), (6.4, 5.12, 3.84), (6.4, 1.92, 1.92), (10.24, 1.92, 1.28)])
def elastic_transform(x, c, rng):
    """A random affine warp (three points moved by up to ``c[2]`` pixels, reflect-101 borders),
    then a smooth random displacement field (``alpha = c[0]``, ``sigma = c[1]``, reflected borders)."""
    alpha, sigma, jitter = c
    n, height, width, _ = x.shape
    x = x.astype(np.float32) / 255.0
    centre = np.float32([height, width]) // 2
    third = min(height, width) // 3
    source = np.float32([centre + third, [centre[0] + third, centre[1] - third], centre - third])
    targets = source[None] + rng.uniform(-jitter, jitter, size=(n, *source.shape)).astype(np.float32)
    warped = filters.bilinear_sample(x, *filters.affine_coordinates(source, targets, height, width), mode="mirror")
    fields = []
    for _ in range(2):
        noise = rng.uniform(-1, 1, size=(n, height, width))
        if sigma > 0:
            noise = ndimage.gaussian_filter(noise, (0, sigma, sigma), mode="reflect", truncate=3.0)
        fields.append((noise * alpha).astype(np.float32))
    dx, dy = fields
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    out = filters.bilinear_sample(warped.astype(np.float32), ys[None] + dy, xs[None] + dx, mode="reflect")
    return np.clip(out, 0, 1) * 255


@register_corruption("PIX", deterministic=True,
                     cifar=[0.95, 0.9, 0.85, 0.75, 0.65],
                     tiny_imagenet=[0.9, 0.8, 0.7, 0.6, 0.5])
def pixelate(x, c, rng):
    size = x.shape[1]
    small = int(size * c)
    out = np.empty(x.shape, dtype=np.float64)
    for i, image in enumerate(x):
        picture = Image.fromarray(image).resize((small, small), Image.BOX).resize((size, size), Image.BOX)
        out[i] = np.asarray(picture)
    return out


@register_corruption("JPEG", deterministic=True,
                     cifar=[80, 65, 58, 50, 40],
                     tiny_imagenet=[65, 58, 50, 40, 25])
def jpeg_compression(x, c, rng):
    out = np.empty(x.shape, dtype=np.float64)
    for i, image in enumerate(x):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=c)
        out[i] = np.asarray(Image.open(buffer))
    return out
