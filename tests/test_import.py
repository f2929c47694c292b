"""Bring your own model: ``archrepair import`` makes a checkpoint from a torchvision model or a
user's own factory (a file outside the package, with residual units named unlike the zoo's), and
every command then works on it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import archrepair
from archrepair.cli import main

USER_MODULE = '''
import torch
from torch import nn


class Unit(nn.Module):
    """A residual unit whose attributes are not named like the zoo's (no conv1/bn1/shortcut)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.left = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                  nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = nn.Sequential() if cin == cout and stride == 1 else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return torch.relu(self.left(x) + self.skip(x))


class Net(nn.Module):
    def __init__(self, classes=3, width=8):
        super().__init__()
        self.entry = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.stage1 = nn.Sequential(Unit(width, width, 1), Unit(width, width, 1))
        self.stage2 = nn.Sequential(Unit(width, 2 * width, 2), Unit(2 * width, 2 * width, 1))
        self.head = nn.Linear(2 * width, classes)

    def forward(self, x):
        return self.head(self.stage2(self.stage1(self.entry(x))).mean((2, 3)))


def build(classes=3, width=8):
    return Net(classes, width)
'''

FAST = ["--count", "10", "--train-examples", "60", "--search-epochs", "1", "--warmup-epochs", "0",
        "--finetune-epochs", "1", "--level", "5", "--partial-channels", "1"]


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A folder outside the package with a data set, the user's module and weights for it and for a
    torchvision ResNet-18."""
    import importlib.util

    import torchvision
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("user")
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (200, 32, 32, 3), np.uint8), rng.integers(0, 3, 200)
    x[y == 1, :16] //= 3
    np.savez(root / "d.npz", x_train=x[:150], y_train=y[:150], x_test=x[150:], y_test=y[150:],
             class_names=np.array(["a", "b", "c"]))
    (root / "mynet.py").write_text(USER_MODULE)
    spec = importlib.util.spec_from_file_location("user_mynet", root / "mynet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    save_file(module.build().state_dict(), str(root / "mine.safetensors"))
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), root / "tv.pth")
    return root


def _run(capsys, *args) -> dict:
    status = main([str(a) for a in args] + ["--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)


def test_a_torchvision_resnet18_is_imported_localized_repaired_and_evaluated(user, tmp_path, capsys):
    made = _run(capsys, "import", "--torchvision", "resnet18", "--arg", "num_classes=3", "--weights", user / "tv.pth",
                "--data", f"npz:{user / 'd.npz'}", "--out", tmp_path / "tv")
    assert made["blocks"] == ["layer1", "layer2", "layer3", "layer4"] and made["input_shape"] == [32, 32, 3]
    import torchvision

    reference = torchvision.models.resnet18(num_classes=3).eval()
    reference.load_state_dict(torch.load(user / "tv.pth", weights_only=True))
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(archrepair.load(tmp_path / "tv")(x), reference(x), rtol=0, atol=0)
    located = _run(capsys, "localize", tmp_path / "tv", "--count", "10", "--train-examples", "50", "--level", "5")
    assert located["chosen"] in made["blocks"]
    report = _run(capsys, "repair", tmp_path / "tv", "--block", "layer2", *FAST, "--out", tmp_path / "r")
    assert report["block"] == "layer2"
    evaluated = _run(capsys, "evaluate", tmp_path / "r", "--data", f"npz:{user / 'd.npz'}")
    assert evaluated["test"]["accuracy"] == report["test_accuracy_after"]


def test_a_user_module_from_a_file_is_imported_and_its_residual_units_are_relaxed(user, tmp_path, capsys):
    made = _run(capsys, "import", "--factory", f"{user / 'mynet.py'}:build", "--weights", user / "mine.safetensors",
                "--data", f"npz:{user / 'd.npz'}", "--blocks", "stage1,stage2", "--out", tmp_path / "mine")
    assert made["blocks"] == ["stage1", "stage2"] and made["user_code"]
    record = json.loads((tmp_path / "mine" / "model.json").read_text())
    assert record["architecture"] == "external" and record["arguments"]["factory"].endswith("mynet.py:build")
    chosen = _run(capsys, "failures", tmp_path / "mine", "--count", "10", "--out", tmp_path / "f.json")
    assert chosen["validation_examples"] > 0  # its training hold-out is unknown: validation from the test set
    located = _run(capsys, "localize", tmp_path / "mine", "--count", "10", "--train-examples", "50", "--level", "5")
    assert set(located["ranking_reweighted"]) == {"stage1", "stage2"}
    report = _run(capsys, "repair", tmp_path / "mine", "--block", "stage2", *FAST, "--out", tmp_path / "r")
    # the traced-residual rule found each unit's two conv-BN layers and its skip: 2 units x 3 edges
    assert len([e for e in report["genotype"]["edges"] if e["op"] == "original"]) == 6
    _run(capsys, "evaluate", tmp_path / "r")
    assert archrepair.load(tmp_path / "r")(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


def test_an_rgb_stem_is_folded_to_grayscale_data_and_the_mismatch_is_named(user, tmp_path, capsys):
    import torchvision

    x = np.load(user / "d.npz")
    np.savez(tmp_path / "gray.npz", **{k: x[k][..., :1] if k.startswith("x_") else x[k] for k in x.files})
    common = ["import", "--torchvision", "resnet18", "--arg", "num_classes=3", "--weights", str(user / "tv.pth"),
              "--data", f"npz:{tmp_path / 'gray.npz'}"]
    assert main([*common, "--out", str(tmp_path / "refused")]) == 1
    err = capsys.readouterr().err
    assert "'conv1' takes 3 channels but the images have 1; give --in-channels-from 3" in err
    assert len(err.strip().splitlines()) == 1
    assert main([*common, "--in-channels-from", "1", "--out", str(tmp_path / "refused")]) == 1
    assert "first convolution takes 3 channels" in capsys.readouterr().err and not (tmp_path / "refused").exists()
    made = _run(capsys, *common, "--in-channels-from", "3", "--out", tmp_path / "gray")
    assert made["input_shape"] == [32, 32, 1] and made["source"]["stem"] == {"module": "conv1", "in_channels": 1}
    reference = torchvision.models.resnet18(num_classes=3).eval()
    reference.load_state_dict(torch.load(user / "tv.pth", weights_only=True))
    gray = torch.randn(2, 1, 32, 32)
    # the folded model on a gray image is the RGB model on that image repeated over its 3 channels
    torch.testing.assert_close(archrepair.load(tmp_path / "gray")(gray), reference(gray.repeat(1, 3, 1, 1)),
                               rtol=1e-4, atol=1e-5)
    located = _run(capsys, "localize", tmp_path / "gray", "--count", "10", "--train-examples", "50", "--level", "5")
    assert located["chosen"] in made["blocks"]


def _hashes(root: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("arguments, expected", [
    pytest.param(["--torchvision", "resnet18", "--weights", "{u}/none.pth"], "none.pth", id="weights-missing"),
    pytest.param(["--torchvision", "resnet18", "--weights", "{u}/tv.pth"], "do not fit", id="weights-for-another-class-count"),
    pytest.param(["--torchvision", "resnet18", "--arg", "num_classes=3", "--weights", "{u}/mynet.py"], "mynet.py",
                 id="weights-not-a-state-dict"),
    pytest.param(["--torchvision", "resnet1800", "--weights", "{u}/tv.pth"], "resnet1800", id="torchvision-name-unknown"),
    pytest.param(["--timm", "resnet18", "--weights", "{u}/tv.pth"], "timm", id="timm-not-installed"),
    pytest.param(["--factory", "{u}/none.py:build", "--weights", "{u}/mine.safetensors"], "none.py", id="factory-file-missing"),
    pytest.param(["--factory", "{u}/mynet.py:missing", "--weights", "{u}/mine.safetensors"], "missing",
                 id="factory-function-missing"),
    pytest.param(["--factory", "{u}/mynet.py", "--weights", "{u}/mine.safetensors"], "path/to/file.py:function",
                 id="factory-without-function"),
    pytest.param(["--factory", "{u}/mynet.py:build", "--weights", "{u}/mine.safetensors"], "--blocks",
                 id="unknown-family-without-blocks"),
    pytest.param(["--factory", "{u}/mynet.py:build", "--weights", "{u}/mine.safetensors", "--blocks", "stage9"], "stage9",
                 id="block-unknown"),
    pytest.param(["--factory", "{u}/mynet.py:build", "--arg", "classes=5", "--weights", "{u}/mine.safetensors"],
                 "do not fit", id="builder-argument-changes-the-weights"),
    pytest.param(["--factory", "{u}/mynet.py:build", "--arg", "=3", "--weights", "{u}/mine.safetensors"], "--arg",
                 id="argument-without-a-name"),
    pytest.param(["--factory", "{u}/mynet.py:build", "--weights", "{u}/mine.safetensors", "--blocks", "stage1",
                  "--mean", "0.5", "--std", "0.2"], "--mean", id="normalisation-with-one-channel"),
    pytest.param(["--factory", "{u}/mynet.py:build", "--weights", "{u}/mine.safetensors", "--blocks", "stage1",
                  "--std", "0.2,x,0.2"], "--std", id="normalisation-not-numbers"),
    pytest.param(["--torchvision", "resnet18", "--arg", "num_classes=3", "--weights", "{u}/tv.pth", "--input-size", "0",
                  "--classes", "a,b,c"], "--input-size", id="input-size-zero"),
    pytest.param(["--torchvision", "resnet18", "--arg", "num_classes=3", "--weights", "{u}/tv.pth", "--input-size", "32"],
                 "--classes", id="no-data-and-no-classes"),
])
def test_bad_imports_are_one_line_and_touch_nothing(user, tmp_path, capsys, arguments, expected):
    arguments = [a.format(u=user) for a in arguments]
    needs_data = not any(a in ("--input-size",) for a in arguments)
    before = _hashes(user)
    status = main(["import", *arguments, *(["--data", f"npz:{user / 'd.npz'}"] if needs_data else []),
                   "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert status == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert expected in err
    assert _hashes(user) == before and not (tmp_path / "m").exists()


def test_code_inside_a_checkpoint_folder_is_never_run(user, tmp_path, capsys):
    _run(capsys, "import", "--factory", f"{user / 'mynet.py'}:build", "--weights", user / "mine.safetensors",
         "--data", f"npz:{user / 'd.npz'}", "--blocks", "stage1,stage2", "--out", tmp_path / "mine")
    (tmp_path / "mine" / "evil.py").write_text("raise SystemExit('ran code from a checkpoint folder')\n")
    record = json.loads((tmp_path / "mine" / "model.json").read_text())
    record["arguments"]["factory"] = f"{tmp_path / 'mine' / 'evil.py'}:build"
    (tmp_path / "mine" / "model.json").write_text(json.dumps(record))
    status = main(["evaluate", str(tmp_path / "mine")])
    assert status == 1 and "never run" in capsys.readouterr().err
