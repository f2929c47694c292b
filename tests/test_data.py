"""Data sources, caching, the batch loader and the shared real data."""

import pickle
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from archrepair import ArchRepairError
from archrepair.data import BatchLoader, load_data, parse_spec
from archrepair.data import sources


def test_digits_is_the_embedded_default(digits):
    assert digits.image_shape == (8, 8, 1)
    assert len(digits.y_train) + len(digits.y_test) == 1797
    assert digits.x_train.max() == 255 and digits.num_classes == 10
    assert load_data().fingerprint == digits.fingerprint  # seeded split: the same every time


def test_spec_parsing_infers_kinds(tmp_path):
    assert parse_spec("cifar10:/data?download=1") == ("cifar10", "/data", {"download": "1"})
    assert parse_spec("x.npz")[0] == "npz"
    assert parse_spec("imgs.tar.gz?size=64") == ("imagefolder", "imgs.tar.gz", {"size": "64"})
    with pytest.raises(ArchRepairError, match="cannot tell"):
        parse_spec("mystery.bin")


def test_missing_data_path_is_explained():
    with pytest.raises(ArchRepairError, match="does not exist"):
        load_data("npz:/no/such/file.npz")


def test_corrupt_npz_is_explained(tmp_path):
    path = tmp_path / "broken.npz"
    np.savez(path, x_train=np.zeros((4, 8, 8, 1), np.uint8), y_train=np.zeros(4), x_test=np.zeros((2, 8, 8, 1), np.uint8), y_test=np.zeros(2))
    path.write_bytes(path.read_bytes()[:200])  # truncated download
    with pytest.raises(ArchRepairError, match="cannot read npz"):
        load_data(str(path))


def test_npz_missing_arrays_named(tmp_path):
    path = tmp_path / "partial.npz"
    np.savez(path, x_train=np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(ArchRepairError, match=r"lacks arrays \['x_test', 'y_test', 'y_train'\]"):
        load_data(str(path))


def _write_images(root, split_counts, size=6):
    rng = np.random.default_rng(0)
    for split, count in split_counts.items():
        for label in ("cat", "dog"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def test_imagefolder_from_folder_and_tarball_with_cache(tmp_path, monkeypatch):
    _write_images(tmp_path / "tree", {"train": 3, "val": 2})
    from_dir = load_data(f"imagefolder:{tmp_path / 'tree'}")
    assert from_dir.class_names == ["cat", "dog"] and from_dir.x_train.shape == (6, 6, 6, 3)
    assert from_dir.y_test.tolist() == [0, 0, 1, 1]
    archive = tmp_path / "tree.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "tree", arcname="tree")
    from_tar = load_data(str(archive))
    np.testing.assert_array_equal(from_tar.x_train, from_dir.x_train)
    monkeypatch.setattr(sources, "_decode_members", lambda *a: pytest.fail("decoded again instead of using the cache"))
    assert load_data(str(archive)).fingerprint == from_tar.fingerprint


def test_imagefolder_resize_uses_its_own_cache_entry(tmp_path):
    _write_images(tmp_path / "tree", {"train": 2, "test": 1})
    assert load_data(f"imagefolder:{tmp_path / 'tree'}?size=4").image_shape == (4, 4, 3)
    assert load_data(f"imagefolder:{tmp_path / 'tree'}").image_shape == (6, 6, 3)


def test_imagefolder_without_splits_is_explained(tmp_path):
    _write_images(tmp_path / "tree", {"train": 2})
    with pytest.raises(ArchRepairError, match="train/<class>/<image> and test"):
        load_data(f"imagefolder:{tmp_path / 'tree'}")


def test_torchvision_cifar10_from_local_files(tmp_path, monkeypatch):
    """The torchvision path, fed local files in CIFAR's pickle layout (its checksum check bypassed)."""
    from torchvision.datasets import cifar

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]
    for name in names:
        batch = {"data": rng.integers(0, 255, (4, 3072), dtype=np.uint8), "labels": [0, 1, 2, 3]}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    monkeypatch.setattr(cifar, "check_integrity", lambda *args: True)
    monkeypatch.setattr(cifar.CIFAR10, "_check_integrity", lambda self: True)
    data = load_data(f"cifar10:{tmp_path}")
    assert data.x_train.shape == (20, 32, 32, 3) and data.x_test.shape == (4, 32, 32, 3)
    assert data.class_names[:2] == ["c0", "c1"]


def test_torchvision_cifar10_missing_files_is_explained(tmp_path):
    with pytest.raises(ArchRepairError, match="cifar10 not found.*download=1"):
        load_data(f"cifar10:{tmp_path}")


def test_loader_normalises_and_keeps_order():
    x = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    loader = BatchLoader(x, np.array([0, 1]), mean=[0.5] * 3, std=[0.25] * 3, batch_size=8)
    images, labels = next(iter(loader))
    expected = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(images, expected)
    assert labels.tolist() == [0, 1]


def test_crop_flip_is_a_shifted_window_and_seeded():
    x = np.random.default_rng(0).integers(1, 255, (16, 8, 8, 3), dtype=np.uint8)
    loader = BatchLoader(x, np.zeros(16, np.int64), [0, 0, 0], [1, 1, 1], batch_size=16, shuffle=True,
                         augment="crop-flip", seed=3, padding=2)
    first = next(iter(loader))[0]
    again = next(iter(loader))[0]
    torch.testing.assert_close(first, again)  # same seed and epoch, same batch
    loader.set_epoch(1)
    assert not torch.equal(next(iter(loader))[0], first)
    # every augmented image is a window of the zero-padded original, possibly mirrored
    loader.set_epoch(0)
    order = torch.randperm(16, generator=torch.Generator().manual_seed(3 * 1_000_003))
    for row, source in zip(first, order):
        padded = torch.nn.functional.pad(torch.from_numpy(x[source]).permute(2, 0, 1).float() / 255, (2, 2, 2, 2))
        windows = [padded[:, i : i + 8, j : j + 8] for i in range(5) for j in range(5)]
        assert any(torch.allclose(row, w) or torch.allclose(row, w.flip(2)) for w in windows)


def test_shared_exact_cifar10_subset(shared_data):
    data = load_data(str(shared_data / "cifar10" / "cifar10-exact-subset.npz"))
    assert data.x_train.shape == (4000, 32, 32, 3)
    assert np.bincount(data.y_test).tolist() == [103, 89, 100, 103, 90, 86, 112, 102, 106, 109]
    assert np.allclose(np.array(data.channel_stats()[0]) * 255, [125.36, 122.85, 113.39], atol=0.01)
