"""Corruption fidelity against the reference CIFAR-10-C subset made by the original generator
(``../shared/data/cifar10c``): deterministic corruptions match pixel for pixel, random ones match
the reference's mean absolute difference to the clean images within 10% at every severity."""

import numpy as np
import pytest

from archrepair import ArchRepairError
from archrepair.data.corruptions import DETERMINISTIC, NAMES, corrupt
from archrepair.data.corruptions.textures import load_textures

RANDOM = [name for name in NAMES if name not in DETERMINISTIC]


@pytest.fixture(scope="module")
def reference(shared_data):
    ref = np.load(shared_data / "cifar10c" / "cifar10c-ref-250.npz")
    clean = np.load(shared_data / "cifar10" / "cifar10-exact-subset.npz")["x_test"][:250]
    return ref, clean


def _severity(ref, name, severity):
    return ref[name][250 * (severity - 1) : 250 * severity]


def test_the_papers_fifteen_in_order():
    assert NAMES[4] == "glass_blur" and len(NAMES) == 15 and len(DETERMINISTIC) == 6


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_deterministic_corruptions_match_the_reference(reference, name):
    ref, clean = reference
    for severity in range(1, 6):
        ours = corrupt(clean, name, severity).astype(int)
        theirs = _severity(ref, name, severity).astype(int)
        assert np.abs(ours - theirs).mean() <= 0.5, severity
        assert (ours == theirs).mean() >= 0.95, severity


@pytest.mark.parametrize("name", RANDOM)
def test_random_corruptions_match_the_reference_strength(reference, name):
    ref, clean = reference
    for severity in range(1, 6):
        ours = np.abs(corrupt(clean, name, severity, seed=0).astype(int) - clean).mean()
        theirs = np.abs(_severity(ref, name, severity).astype(int) - clean).mean()
        assert abs(ours / theirs - 1) <= 0.10, (severity, ours, theirs)


def test_frost_with_the_reference_textures_within_five_percent(reference, shared_data):
    ref, clean = reference
    folder = shared_data / "cifar10c" / "frost"
    textures = load_textures([str(folder / n) for n in ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")])
    for severity in range(1, 6):
        ours = np.abs(corrupt(clean, "frost", severity, seed=0, frost_textures=textures).astype(int) - clean).mean()
        theirs = np.abs(_severity(ref, "frost", severity).astype(int) - clean).mean()
        assert abs(ours / theirs - 1) <= 0.05, (severity, ours, theirs)


@pytest.mark.parametrize("name", RANDOM)
def test_seeded(name):
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    assert np.array_equal(corrupt(images, name, 3, seed=5), corrupt(images, name, 3, seed=5))
    assert not np.array_equal(corrupt(images, name, 3, seed=5), corrupt(images, name, 3, seed=6))


def test_bad_input_is_explained():
    images = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(ArchRepairError, match="unknown corruption 'gaussian_blur'"):
        corrupt(images, "gaussian_blur", 1)
    with pytest.raises(ArchRepairError, match="severity must be 1..5"):
        corrupt(images, "fog", 6)
    with pytest.raises(ArchRepairError, match="uint8 RGB"):
        corrupt(images[..., :1], "fog", 1)
