"""The command line: the whole foundation job on the digits, JSON output, and one-line errors."""

import json

import numpy as np


def test_train_failures_evaluate(cli, tmp_path):
    status, out, err = cli("train", "--model", "small_cnn", "--width", "0.5", "--epochs", "5", "--lr", "0.05",
                           "--out", tmp_path / "m", "--json")
    assert status == 0
    trained = json.loads(out)  # stdout holds only the JSON; the progress goes to stderr
    assert trained["epochs_run"] == 5 and 0.5 < trained["test_accuracy"] <= 1
    assert [line.split()[1] for line in err.splitlines() if line.startswith("epoch ")] == ["1", "2", "3", "4", "5"]

    status, out, _ = cli("failures", tmp_path / "m", "--count", "10", "--seed", "3", "--out", tmp_path / "f.json", "--json")
    assert status == 0
    chosen = json.loads(out)
    assert chosen["failures"] == 10 and chosen["eval_examples"] == chosen["test_examples"] - 10
    assert chosen["eval_accuracy"] > chosen["test_accuracy"]  # removing failures alone raises accuracy

    status, out, _ = cli("evaluate", tmp_path / "m", "--failures", tmp_path / "f.json", "--json")
    assert status == 0
    report = json.loads(out)
    assert report["test"]["accuracy"] == trained["test_accuracy"]
    assert report["fail"]["accuracy"] == 0.0 and report["fail"]["examples"] == 10
    assert report["eval"]["accuracy"] == chosen["eval_accuracy"]
    assert set(report["test"]["per_class"]) == {str(d) for d in range(10)}

    status, out, _ = cli("evaluate", tmp_path / "m")
    assert status == 0 and "all" in out


def test_help_explains_every_command(cli):
    from archrepair.commands import INDEX

    for entry in INDEX:
        status, out, _ = cli(entry.name, "--help")
        assert status == 0 and f"usage: archrepair {entry.name}" in out and "--json" in out


def test_the_top_level_help_lists_every_command_without_importing_torch():
    import subprocess
    import sys

    code = ("import sys; from archrepair.cli import main; main(['--help']); "
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:3]")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    from archrepair.commands import INDEX

    assert done.returncode == 0, done.stderr
    assert all(entry.name in done.stdout for entry in INDEX)


def test_unknown_model_fails_with_one_line(cli, tmp_path):
    status, _, err = cli("train", "--model", "resnet19", "--out", tmp_path / "m")
    assert status == 1
    assert err.count("\n") == 1 and "unknown model 'resnet19'" in err


def test_unknown_block_fails_with_one_line(cli):
    status, _, err = cli("blocks", "resnet18", "--blocks", "layer1,layer7")
    assert status == 1 and "unknown block 'layer7'" in err and "layer4" in err


def test_checkpoint_with_another_class_count_fails(cli, digits_checkpoint, tmp_path):
    path = tmp_path / "three.npz"
    np.savez(path, x_train=np.zeros((6, 8, 8, 1), np.uint8), y_train=np.array([0, 1, 2] * 2),
             x_test=np.zeros((3, 8, 8, 1), np.uint8), y_test=np.array([0, 1, 2]))
    status, _, err = cli("evaluate", digits_checkpoint, "--data", path)
    assert status == 1 and "predicts 10 classes" in err


def test_missing_data_path_fails(cli, tmp_path):
    status, _, err = cli("data", "npz:/nowhere/x.npz")
    assert status == 1 and "does not exist" in err


def test_corrupt_npz_fails(cli, tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    status, _, err = cli("data", path)
    assert status == 1 and "cannot read npz" in err


def test_failures_from_other_data_are_refused(cli, digits_checkpoint, tmp_path):
    assert cli("failures", digits_checkpoint, "--count", "5", "--out", tmp_path / "f.json")[0] == 0
    split = json.loads((tmp_path / "f.json").read_text())
    split["data_fingerprint"] = "0" * 16
    (tmp_path / "f.json").write_text(json.dumps(split))
    status, _, err = cli("evaluate", digits_checkpoint, "--failures", tmp_path / "f.json")
    assert status == 1 and "made on other data" in err


def test_models_and_data_commands(cli):
    status, out, _ = cli("models", "--width", "0.25", "--json")
    assert status == 0 and {m["name"] for m in json.loads(out)["models"]} >= {"resnet18", "vgg16"}
    status, out, _ = cli("data", "--json")
    assert status == 0 and json.loads(out)["train_counts"][0] > 100


def test_fewer_failures_than_asked_for_are_said_with_the_reason(cli, digits_checkpoint, tmp_path):
    """Whatever --json says: one line on stderr with the count asked for, the pool and the count taken."""
    status, out, err = cli("failures", digits_checkpoint, "--count", "100000", "--out", tmp_path / "f.json", "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["failures"] < 100000
    notes = [line for line in err.splitlines() if "note:" in line]
    assert len(notes) == 1 and "asked for 100000 failures" in notes[0]
    assert f"D_fail takes all {result['failures']}" in notes[0] and "failure pool holds" in notes[0]
    status, _, err = cli("failures", digits_checkpoint, "--count", "5", "--out", tmp_path / "g.json")
    assert status == 0 and "note:" not in err
