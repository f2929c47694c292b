"""Tiny-ImageNet-C constants and the Tiny-ImageNet-C tree reader."""

import numpy as np
import pytest

from archrepair.data import ImageData
from archrepair.data.corrupted import corrupted_test, write_imagefolder_c
from archrepair.data.corruptions import CIFAR, NAMES, PRESETS, TINY_IMAGENET, corrupt, corrupt_many, preset_for
from archrepair.errors import ArchRepairError


def test_presets_cover_every_corruption_and_severity():
    for constants in (CIFAR, TINY_IMAGENET):
        assert sorted(constants) == sorted(NAMES)
        assert all(len(values) == 5 for values in constants.values())
    assert preset_for(32) == "cifar" and preset_for(64) == "tiny-imagenet"
    assert PRESETS["tiny-imagenet"]["frost_scale"] == 0.3


def test_tiny_imagenet_constants_are_harsher_where_the_generator_says_so():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(8, 64, 64, 3), dtype=np.uint8)
    for name in ("gaussian_noise", "contrast", "pixelate"):
        cifar = np.abs(corrupt(images, name, 5, preset="cifar").astype(float) - images).mean()
        tiny = np.abs(corrupt(images, name, 5).astype(float) - images).mean()  # 64 px: tiny-imagenet by default
        assert tiny > cifar, name
    with pytest.raises(ArchRepairError, match="preset"):
        corrupt(images, "fog", 1, preset="imagenet")


def test_corrupt_many_gives_what_single_calls_give_in_any_number_of_processes():
    images = np.random.default_rng(1).integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    jobs = [("gaussian_noise", 2), ("zoom_blur", 1), ("fog", 3)]
    parallel = dict(corrupt_many(images, jobs, seed=4, workers=2))
    for name, severity in jobs:
        assert np.array_equal(parallel[(name, severity)], corrupt(images, name, severity, seed=4))


def test_tiny_imagenet_c_tree_round_trips(tmp_path):
    rng = np.random.default_rng(2)
    data = ImageData("toy", rng.integers(0, 256, (6, 64, 64, 3), dtype=np.uint8), np.arange(6) % 3,
                     rng.integers(0, 256, (9, 64, 64, 3), dtype=np.uint8), np.array([2, 0, 1, 1, 2, 0, 0, 1, 2]),
                     ["n01", "n02", "n03"])
    write_imagefolder_c(data, tmp_path, ["fog"], [2], seed=0, progress=False, workers=1)
    assert len(list((tmp_path / "fog" / "2" / "n03").glob("*.png"))) == 3
    read = corrupted_test(data, "fog", 2, source_dir=str(tmp_path))
    expected = corrupt(data.x_test, "fog", 2, seed=0)
    pairs = sorted((int(label), image.tobytes()) for image, label in zip(read.x_test, read.y_test))
    assert pairs == sorted((int(label), image.tobytes()) for image, label in zip(expected, data.y_test))
    with pytest.raises(ArchRepairError, match="does not exist"):
        corrupted_test(data, "fog", 4, source_dir=str(tmp_path))
    other = ImageData("other", data.x_train, data.y_train, data.x_test, data.y_test, ["a", "b", "c"])
    with pytest.raises(ArchRepairError, match="classes the data does not know"):
        corrupted_test(other, "fog", 2, source_dir=str(tmp_path))
