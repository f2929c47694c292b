"""Constants of Hendrycks and Dietterich's generators, severities 1..5 (pixel values in [0, 1]).

``CIFAR`` (32x32) are those of ``make_cifar_c.py``; ``TINY_IMAGENET`` (64x64) those of
``make_tinyimagenet_c.py`` (github.com/hendrycks/robustness, ImageNet-C/create_c/), read from
that file. The procedures are the same except where noted in ``PRESETS``: Tiny-ImageNet-C scales
its frost photographs by 0.3 (CIFAR: 0.2).
"""

CIFAR = {
    "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],
    "shot_noise": [500, 250, 100, 75, 50],
    "impulse_noise": [0.01, 0.02, 0.03, 0.05, 0.07],
    "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
    "glass_blur": [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],
    "motion_blur": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
    "zoom_blur": [1.06, 1.11, 1.16, 1.21, 1.26],  # stop of np.arange(1, stop, 0.01)
    "snow": [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
             (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)],
    "frost": [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],
    "fog": [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],
    "brightness": [0.05, 0.1, 0.15, 0.2, 0.3],
    "contrast": [0.75, 0.5, 0.4, 0.3, 0.15],
    "elastic_transform": [(0, 0, 2.56), (1.6, 6.4, 2.24), (2.56, 1.92, 1.92), (3.2, 1.28, 1.6), (3.2, 0.96, 0.96)],
    "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],
    "jpeg_compression": [80, 65, 58, 50, 40],
}

TINY_IMAGENET = {
    "gaussian_noise": [0.04, 0.08, 0.12, 0.15, 0.18],
    "shot_noise": [250, 100, 50, 30, 15],
    "impulse_noise": [0.01, 0.02, 0.05, 0.08, 0.14],
    "defocus_blur": [(0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)],
    "glass_blur": [(0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)],
    "motion_blur": [(10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)],
    "zoom_blur": [1.06, 1.11, 1.16, 1.21, 1.26],
    "snow": [(0.1, 0.2, 1, 0.6, 8, 3, 0.8), (0.1, 0.2, 1, 0.5, 10, 4, 0.8), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),
             (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6)],
    "frost": [(1, 0.3), (0.9, 0.4), (0.8, 0.45), (0.75, 0.5), (0.7, 0.55)],
    "fog": [(0.4, 3), (0.7, 3), (1, 2.5), (1.5, 2), (2, 1.75)],
    "brightness": [0.1, 0.2, 0.3, 0.4, 0.5],
    "contrast": [0.4, 0.3, 0.2, 0.1, 0.05],
    # (alpha, sigma, affine jitter) = 64 x (0, 0, 0.08), (0.05, 0.3, 0.06), (0.1, 0.08, 0.06), (0.1, 0.03, 0.03), (0.16, 0.03, 0.02)
    "elastic_transform": [(0, 0, 5.12), (3.2, 19.2, 3.84), (6.4, 5.12, 3.84), (6.4, 1.92, 1.92), (10.24, 1.92, 1.28)],
    "pixelate": [0.9, 0.8, 0.7, 0.6, 0.5],
    "jpeg_compression": [65, 58, 50, 40, 25],
}

# Constant sets by name, with the image size each was made for and the scale of frost photographs.
PRESETS = {
    "cifar": {"constants": CIFAR, "size": 32, "frost_scale": 0.2},
    "tiny-imagenet": {"constants": TINY_IMAGENET, "size": 64, "frost_scale": 0.3},
}


def preset_for(height: int) -> str:
    """The preset made for images closest in size to ``height`` pixels (CIFAR up to 48, else Tiny-ImageNet)."""
    return min(PRESETS, key=lambda name: abs(PRESETS[name]["size"] - height))


# The paper's order and its abbreviations (GB is glass blur).
ORDER = [
    ("gaussian_noise", "GN"), ("shot_noise", "SN"), ("impulse_noise", "IN"), ("defocus_blur", "DB"),
    ("glass_blur", "GB"), ("motion_blur", "MB"), ("zoom_blur", "ZB"), ("snow", "SNW"), ("frost", "FRO"),
    ("fog", "FOG"), ("brightness", "BR"), ("contrast", "CTR"), ("elastic_transform", "ET"), ("pixelate", "PIX"),
    ("jpeg_compression", "JPEG"),
]
NAMES = [name for name, _ in ORDER]
DETERMINISTIC = {"defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression"}
