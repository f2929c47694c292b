"""Checkpoints round-trip exactly, never unpickle, and refuse weights or data that do not fit."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from archrepair import ArchRepairError
from archrepair.base_model import make_loader
from archrepair.checkpoint import RECORD_FILE, WEIGHTS_FILE, load_checkpoint, load_record, save_checkpoint
from archrepair.data import load_data
from archrepair.evaluate import predict_logits


def test_reloaded_checkpoint_gives_identical_logits(digits_checkpoint, digits, tmp_path):
    model, record = load_checkpoint(digits_checkpoint)
    loader = make_loader(digits, "test", record)
    logits = predict_logits(model, loader)
    copy_path = save_checkpoint(model, record, tmp_path / "copy")
    again, _ = load_checkpoint(copy_path)
    assert torch.equal(predict_logits(again, loader), logits)
    assert abs((logits.argmax(1).numpy() == digits.y_test).mean() - record.metrics["test_accuracy"]) < 1e-9


def test_record_holds_what_is_needed_to_rebuild_and_use(digits_checkpoint, digits):
    record = load_record(digits_checkpoint)
    assert record.architecture == "small_cnn"
    assert record.arguments == {"num_classes": 10, "in_channels": 1, "width": 0.5}
    assert record.input_shape == [8, 8, 1] and len(record.mean) == 1
    assert record.data["fingerprint"] == digits.fingerprint
    assert record.training["seed"] == 0 and len(record.training["history"]) == record.training["epochs_run"]


def test_weights_of_another_class_count_are_refused(digits_checkpoint, tmp_path):
    folder = tmp_path / "tampered"
    folder.mkdir()
    weights = load_file(str(digits_checkpoint / WEIGHTS_FILE))
    weights["linear.weight"] = torch.zeros(5, weights["linear.weight"].shape[1])
    weights["linear.bias"] = torch.zeros(5)
    save_file(weights, str(folder / WEIGHTS_FILE))
    (folder / RECORD_FILE).write_text((digits_checkpoint / RECORD_FILE).read_text())
    with pytest.raises(ArchRepairError, match=r"linear\.(weight|bias) has shape \(5.*another number of classes"):
        load_checkpoint(folder)


def test_data_with_another_class_count_is_refused(digits_checkpoint, tmp_path):
    _, record = load_checkpoint(digits_checkpoint)
    import numpy as np

    path = tmp_path / "three.npz"
    np.savez(path, x_train=np.zeros((6, 8, 8, 1), np.uint8), y_train=np.array([0, 1, 2] * 2),
             x_test=np.zeros((3, 8, 8, 1), np.uint8), y_test=np.array([0, 1, 2]))
    with pytest.raises(ArchRepairError, match="predicts 10 classes but data .* has 3"):
        record.check_fits(load_data(str(path)))


def test_not_a_checkpoint_folder(tmp_path):
    with pytest.raises(ArchRepairError, match="not a checkpoint folder"):
        load_checkpoint(tmp_path)


def test_saving_replaces_atomically_and_keeps_json_readable(digits_checkpoint, tmp_path):
    model, record = load_checkpoint(digits_checkpoint)
    target = tmp_path / "ckpt"
    save_checkpoint(model, record, target)
    save_checkpoint(model, record, target)  # over an old one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no staging or backup folders left
    assert json.loads((target / RECORD_FILE).read_text())["format"] == "archrepair-model/1"


def test_outputs_get_the_usual_permissions_not_the_temporary_files_private_ones(tmp_path):
    import os
    import stat

    from archrepair.fileio import UMASK, replace_directory, staging_directory, write_text_atomically

    write_text_atomically(tmp_path / "report.json", "{}")
    assert stat.S_IMODE(os.stat(tmp_path / "report.json").st_mode) == 0o666 & ~UMASK
    staging = staging_directory(tmp_path / "model")
    replace_directory(staging, tmp_path / "model")
    assert stat.S_IMODE(os.stat(tmp_path / "model").st_mode) == 0o777 & ~UMASK


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_weights_that_are_not_finite_are_refused_at_load_with_the_tensor_s_name(digits_checkpoint, tmp_path, bad, cli):
    import shutil

    folder = tmp_path / "broken"
    shutil.copytree(digits_checkpoint, folder)
    weights = load_file(str(folder / WEIGHTS_FILE))
    name = sorted(key for key, value in weights.items() if value.is_floating_point())[1]
    weights[name].view(-1)[0] = bad
    save_file(weights, str(folder / WEIGHTS_FILE))
    with pytest.raises(ArchRepairError, match=f"{name} holds 1 of .* not finite"):
        load_checkpoint(folder)
    status, _, err = cli("evaluate", folder)
    assert status == 1 and name in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
