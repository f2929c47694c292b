"""Training-time augmentation on batches of tensors (no per-image PIL loop), in ``[0, 1]`` space
before normalisation: AugMix's operations with per-image magnitudes, AugMix's mixing, a weight-free
style transfer, and the Jensen-Shannon consistency loss.

AugMix's operation set here leaves out the ones that overlap the 15 corruptions (contrast, colour,
brightness, sharpness), as the AugMix paper does (Hendrycks et al., ICLR 2020); magnitudes follow
its ``augmentations.py`` (``severity`` 3: rotations up to 9°, shears up to 0.09, translations up
to a tenth of the image side times ``severity / 3``, ...).

Example:
    >>> generator = torch.Generator().manual_seed(0)
    >>> mixed = augmix(torch.rand(8, 3, 32, 32), generator)   # (8, 3, 32, 32) in [0, 1]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Op = Callable[[torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]  # (images, levels in (0, 1], gen)


def _functional():
    """torchvision's image functions, imported when an operation first needs them (importing
    torchvision costs every command about 1.3 s of start-up)."""
    import torchvision.transforms.v2.functional as functional

    return functional


def _uniform(count: int, generator: torch.Generator, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    return low + (high - low) * torch.rand(count, generator=generator)


def _signs(count: int, generator: torch.Generator) -> torch.Tensor:
    return torch.where(torch.rand(count, generator=generator) < 0.5, -1.0, 1.0)


def affine(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``images`` ``(B, C, H, W)`` warped by per-image affine maps ``theta`` ``(B, 2, 3)`` (output to
    input, normalised coordinates), bilinear, zeros outside."""
    grid = nn.functional.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _identity_theta(count: int) -> torch.Tensor:
    return torch.eye(2, 3).repeat(count, 1, 1)


def _rotate(images, levels, generator):
    angles = torch.deg2rad(30.0 * levels * _signs(len(images), generator))
    theta = _identity_theta(len(images))
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angles), -torch.sin(angles)
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angles), torch.cos(angles)
    return affine(images, theta)


def _shear(axis: int) -> Op:
    def shear(images, levels, generator):
        theta = _identity_theta(len(images))
        theta[:, axis, 1 - axis] = 0.3 * levels * _signs(len(images), generator)
        return affine(images, theta)
    return shear


def _translate(axis: int) -> Op:
    def translate(images, levels, generator):
        theta = _identity_theta(len(images))
        theta[:, axis, 2] = 2.0 / 3.0 * levels * _signs(len(images), generator)  # up to a third of the side
        return affine(images, theta)
    return translate


def _posterize(images, levels, generator):
    bits = 4 - torch.floor(4 * levels)  # 4..1 bits kept (AugMix: 4 - int(level * 4 / 10))
    step = (2.0 ** (8 - bits)).view(-1, 1, 1, 1)
    return torch.floor(images * 255.0 / step) * step / 255.0


def _solarize(images, levels, generator):
    threshold = (1.0 - levels).view(-1, 1, 1, 1)
    return torch.where(images >= threshold, 1.0 - images, images)


OPS: dict[str, Op] = {
    "autocontrast": lambda images, levels, generator: _functional().autocontrast(images),
    "equalize": lambda images, levels, generator: _functional().equalize(images),
    "posterize": _posterize,
    "rotate": _rotate,
    "solarize": _solarize,
    "shear_x": _shear(0),
    "shear_y": _shear(1),
    "translate_x": _translate(0),
    "translate_y": _translate(1),
}


def apply_ops(images: torch.Tensor, choices: torch.Tensor, names: list[str], levels: torch.Tensor,
              generator: torch.Generator, extra: dict[str, Op] | None = None) -> torch.Tensor:
    """Each image ``i`` of ``images`` ``(B, C, H, W)`` through operation ``names[choices[i]]`` at
    ``levels[i]`` in ``(0, 1]`` (a fraction of the operation's largest magnitude); ``extra``: more
    operations by name (a style transfer). A choice of ``-1`` leaves the image as it is."""
    table = OPS | (extra or {})
    out = images.clone()
    for index, name in enumerate(names):
        chosen = torch.nonzero(choices == index).flatten()
        if len(chosen):
            out[chosen] = table[name](images[chosen], levels[chosen], generator).clamp(0, 1)
    return out


def augmix(images: torch.Tensor, generator: torch.Generator, names: list[str] | None = None,
           weights: torch.Tensor | None = None, width: int = 3, depth: tuple[int, int] = (1, 3), severity: float = 3.0,
           alpha: float = 1.0, extra: dict[str, Op] | None = None) -> torch.Tensor:
    """AugMix (Hendrycks et al.): per image, ``width`` chains of ``depth`` operations (uniform in the
    range, per chain and image) drawn from ``names`` (with ``weights``; default uniform), mixed with
    Dirichlet(``alpha``) weights, then blended with the image by ``m ~ Beta(alpha, alpha)``.
    ``images`` ``(B, C, H, W)`` in ``[0, 1]``; returns the same shape."""
    names = names or list(OPS)
    count = len(images)
    weights = torch.ones(len(names)) if weights is None else weights
    mixing = torch.distributions.Dirichlet(torch.full((width,), alpha)).sample((count,))  # (B, width)
    blend = torch.distributions.Beta(alpha, alpha).sample((count,)).view(-1, 1, 1, 1)
    chains = []
    for _ in range(width):
        steps = torch.randint(depth[0], depth[1] + 1, (count,), generator=generator)
        augmented = images
        for step in range(depth[1]):
            choices = torch.multinomial(weights, count, replacement=True, generator=generator)
            choices = torch.where(steps > step, choices, torch.full_like(choices, -1))
            levels = _uniform(count, generator, 0.1, severity) / 10.0
            augmented = apply_ops(augmented, choices, names, levels, generator, extra)
        chains.append(augmented)
    return mix(images, torch.stack(chains, 1), mixing, blend)


def mix(images: torch.Tensor, chains: torch.Tensor, mixing: torch.Tensor, blend: torch.Tensor) -> torch.Tensor:
    """AugMix's mixing: ``(1 - m) x + m Σ_i w_i chain_i`` with ``chains`` ``(B, width, C, H, W)``,
    per-image weights ``mixing`` ``(B, width)`` (summing to one) and ``blend`` ``m`` ``(B, 1, 1, 1)``."""
    mixed = (mixing.view(*mixing.shape, 1, 1, 1) * chains).sum(1)
    return (1 - blend) * images + blend * mixed


def style_transfer(images: torch.Tensor, styles: torch.Tensor, beta: torch.Tensor, blend: float = 0.5) -> torch.Tensor:
    """A weight-free stand-in for photorealistic style transfer (DeepRepair's WCT2): each image takes
    the low-frequency Fourier amplitudes of its style image (a centred square of side ``beta`` ``(B,)``
    times the image side, as in FDA), its whole amplitude spectrum is blended ``blend`` of the way
    towards the style's (so noise and blur textures carry over), its phase is kept, and each channel
    is matched to the style's mean and standard deviation. ``images``, ``styles``: ``(B, C, H, W)`` in
    ``[0, 1]``."""
    spectrum, style_spectrum = torch.fft.fft2(images), torch.fft.fft2(styles)
    amplitude, phase, style_amplitude = spectrum.abs(), spectrum.angle(), style_spectrum.abs()
    height, width = images.shape[-2:]
    rows = torch.fft.fftfreq(height).abs().view(1, 1, -1, 1)
    columns = torch.fft.fftfreq(width).abs().view(1, 1, 1, -1)
    half = (beta.view(-1, 1, 1, 1) / 2).to(images)
    low = (rows <= half) & (columns <= half)
    amplitude = torch.where(low, style_amplitude, amplitude)
    amplitude = (1 - blend) * amplitude + blend * style_amplitude
    transferred = torch.fft.ifft2(torch.polar(amplitude, phase)).real
    mean, std = transferred.mean((2, 3), keepdim=True), transferred.std((2, 3), keepdim=True).clamp_min(1e-6)
    target_mean, target_std = styles.mean((2, 3), keepdim=True), styles.std((2, 3), keepdim=True)
    return ((transferred - mean) / std * target_std + target_mean).clamp(0, 1)


def jensen_shannon(logits: torch.Tensor, views: int = 3) -> torch.Tensor:
    """AugMix's consistency loss over ``views`` stacked views ``(views * B, C)`` of one batch: the
    mean KL divergence of each view's softmax from their mixture (batch mean)."""
    probabilities = nn.functional.softmax(logits, 1).chunk(views)
    mixture = torch.clamp(sum(probabilities) / views, 1e-7, 1).log()
    return sum(nn.functional.kl_div(mixture, p, reduction="batchmean") for p in probabilities) / views


def _per_channel(values, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)


def denormalised(images: torch.Tensor, mean, std) -> torch.Tensor:
    """Normalised images back in ``[0, 1]`` (``mean``, ``std``: per channel)."""
    return images * _per_channel(std, images) + _per_channel(mean, images)


def normalised(images: torch.Tensor, mean, std) -> torch.Tensor:
    """Images in ``[0, 1]`` normalised as the loaders do (``mean``, ``std``: per channel)."""
    return (images - _per_channel(mean, images)) / _per_channel(std, images)


__all__ = ["OPS", "affine", "apply_ops", "augmix", "denormalised", "jensen_shannon", "mix", "normalised", "style_transfer"]
