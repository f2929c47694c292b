"""Corrupted test sets: the corrupt command's official layout, reading it back, and evaluation
under corruptions, on a small CIFAR-shaped data set."""

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory):
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("tiny")
    path = folder / "tiny.npz"
    np.savez(path, x_train=rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8), y_train=np.arange(64) % 4,
             x_test=rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), y_test=np.arange(20) % 4)
    return path


def test_corrupt_writes_the_cifar_c_layout_and_reads_back(cli, tiny_cifar, tmp_path):
    status, out, _ = cli("corrupt", "--data", tiny_cifar, "--out", tmp_path / "c", "--corruptions", "fog,contrast",
                         "--severities", "1,2,3,4,5", "--json")
    assert status == 0 and json.loads(out)["frost"] == "procedural texture"
    fog = np.load(tmp_path / "c" / "fog.npy")
    labels = np.load(tmp_path / "c" / "labels.npy")
    assert fog.shape == (100, 32, 32, 3) and fog.dtype == np.uint8
    assert labels.tolist() == (np.arange(20) % 4).tolist() * 5

    from archrepair.data import load_data
    from archrepair.data.corrupted import corrupted_test

    data = load_data(str(tiny_cifar))
    generated = corrupted_test(data, "fog", 2)
    official = corrupted_test(data, "fog", 2, source_dir=str(tmp_path / "c"))
    assert np.array_equal(generated.x_test, official.x_test)  # same seed, same images
    assert np.array_equal(official.x_test, fog[20:40])
    assert generated.fingerprint != data.fingerprint and np.array_equal(generated.x_train, data.x_train)


def test_evaluate_under_corruptions(cli, tiny_cifar, tmp_path):
    assert cli("train", "--data", tiny_cifar, "--epochs", "1", "--out", tmp_path / "m")[0] == 0
    status, out, _ = cli("evaluate", tmp_path / "m", "--corruptions", "brightness,pixelate", "--severities", "1,3",
                         "--json")
    assert status == 0
    table = json.loads(out)["corruptions"]
    assert set(table) == {"brightness", "pixelate"}
    assert table["pixelate"]["mean"] == pytest.approx(sum(table["pixelate"]["severities"].values()) / 2)
    status, out, _ = cli("failures", tmp_path / "m", "--corruption", "pixelate", "--severity", "3", "--count", "3",
                         "--out", tmp_path / "f.json", "--json")
    assert status == 0
    split = json.loads((tmp_path / "f.json").read_text())
    assert split["data_spec"].endswith("#pixelate-3")


def test_wrong_official_folder_is_explained(cli, tiny_cifar, tmp_path):
    assert cli("train", "--data", tiny_cifar, "--epochs", "1", "--out", tmp_path / "m")[0] == 0
    status, _, err = cli("evaluate", tmp_path / "m", "--corruption", "fog", "--corruption-dir", tmp_path)
    assert status == 1 and "fog.npy" in err


def test_repair_under_a_corruption_validates_on_clean_and_corrupted_examples(cli, tiny_cifar, tmp_path):
    assert cli("train", "--data", tiny_cifar, "--epochs", "1", "--out", tmp_path / "m")[0] == 0
    status, out, err = cli("repair", tmp_path / "m", "--corruption", "fog", "--severity", "2", "--count", "3",
                           "--train-examples", "0", "--search-epochs", "1", "--warmup-epochs", "0",
                           "--finetune-epochs", "1", "--out", tmp_path / "r", "--json")
    assert status == 0, err
    report = json.loads(out)
    val_rows = report["split"]["val_rows"]
    held_out = len(val_rows) // 2
    assert held_out > 0 and len(val_rows) == 2 * held_out  # each held-out example clean and fogged
    assert report["data"]["spec"].endswith("#fog-2")
