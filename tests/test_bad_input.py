"""Bad and unlucky inputs through the command line, as a new user would give them.

Every case must exit 1 with one line on stderr that names the offending option, value or file,
print no traceback, and leave every file in the workspace (inputs and unrelated files alike)
byte-identical.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archrepair.cli import main

FAST_TRAINING = ["--finetune-epochs", "1", "--train-examples", "100"]
FAST = ["--search-epochs", "1", "--warmup-epochs", "0", *FAST_TRAINING]


@pytest.fixture(scope="module")
def base(tmp_path_factory, digits_checkpoint):
    """A workspace template: a checkpoint, its failure split, an unrelated file in a folder."""
    root = tmp_path_factory.mktemp("workspace")
    shutil.copytree(digits_checkpoint, root / "model")
    assert main(["failures", str(root / "model"), "--count", "10", "--out", str(root / "fail.json")]) == 0
    (root / "runs").mkdir()
    (root / "runs" / "notes.txt").write_text("a user's notes, not archrepair's\n")
    return root


@pytest.fixture
def ws(base, tmp_path):
    shutil.copytree(base, tmp_path / "ws")
    return tmp_path / "ws"


def _edit_json(path: Path, change) -> None:
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))


def _image_folder(root: Path, bad: bytes | None = None) -> Path:
    from PIL import Image

    for split in ("train", "test"):
        for label in ("a", "b"):
            folder = root / "images" / split / label
            folder.mkdir(parents=True)
            for index in range(3):
                Image.fromarray(np.full((8, 8, 3), 40 * index, np.uint8)).save(folder / f"{index}.png")
    if bad is not None:
        (root / "images" / "train" / "a" / "broken.png").write_bytes(bad)
    return root / "images"


def _truncated_tarball(root: Path) -> Path:
    folder = _image_folder(root)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname="images")
    path = root / "images.tar.gz"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


def _cifar_c(root: Path, labels: bool = True, truncate: bool = False) -> Path:
    folder = root / "cifar-c"
    folder.mkdir()
    np.save(folder / "fog.npy", np.zeros((5 * 540, 8, 8, 1), np.uint8))
    if labels:
        np.save(folder / "labels.npy", np.zeros(5 * 540, np.int64))
    if truncate:
        payload = (folder / "fog.npy").read_bytes()
        (folder / "fog.npy").write_bytes(payload[: len(payload) // 3])
    return folder


def _genotype(raw: dict, genotype: dict) -> None:
    raw["repair"] = {"block": "block2", "genotype": genotype}


# (case name, setup(ws) -> arguments, text the one-line error must contain)
CASES = [
    # outputs that would destroy data
    ("train-out-holds-unrelated-files", lambda ws: ["train", "--epochs", "1", "--out", ws / "runs"], "--out"),
    ("repair-out-contains-its-inputs", lambda ws: ["repair", ws / "model", "--failures", ws / "fail.json", "--out", ws],
     "is or contains the input"),
    ("failures-out-is-the-checkpoint", lambda ws: ["failures", ws / "model", "--out", ws / "model"], "is or contains the input"),
    ("localize-out-inside-the-checkpoint", lambda ws: ["localize", ws / "model", "--out", ws / "model" / "loc.json"],
     "inside the input folder"),
    ("failures-out-is-a-folder", lambda ws: ["failures", ws / "model", "--out", ws / "runs"], "is a folder"),
    ("failures-out-exists", lambda ws: ["failures", ws / "model", "--out", ws / "fail.json"], "--overwrite"),
    ("repair-out-exists-not-empty", lambda ws: ["repair", ws / "model", "--out", ws / "runs", *FAST], "--overwrite"),
    ("out-unwritable", lambda ws: ["failures", ws / "model", "--out", "/proc/archrepair/fail.json"], "cannot be written"),
    ("out-below-a-file", lambda ws: ["train", "--out", ws / "fail.json" / "m"], "is a file"),
    # failure splits not tied to their model, or not whole
    ("split-of-another-model", lambda ws: (_edit_json(ws / "fail.json", lambda r: r.update(model_fingerprint="0" * 16)),
                                           ["localize", ws / "model", "--failures", ws / "fail.json"])[1], "another model"),
    ("split-out-of-range", lambda ws: (_edit_json(ws / "fail.json", lambda r: r["fail_indices"].append(99999)),
                                       ["evaluate", ws / "model", "--failures", ws / "fail.json"])[1], "outside the test split"),
    ("split-overlapping", lambda ws: (_edit_json(ws / "fail.json", lambda r: r["eval_indices"].append(r["fail_indices"][0])),
                                      ["evaluate", ws / "model", "--failures", ws / "fail.json"])[1], "overlap"),
    ("split-empty", lambda ws: (_edit_json(ws / "fail.json", lambda r: r.update(fail_indices=[])),
                                ["repair", ws / "model", "--failures", ws / "fail.json", "--out", ws / "r"])[1], "D_fail is empty"),
    ("split-not-json", lambda ws: ((ws / "fail.json").write_text("{oops"),
                                   ["evaluate", ws / "model", "--failures", ws / "fail.json"])[1], "fail.json"),
    ("split-missing", lambda ws: ["evaluate", ws / "model", "--failures", ws / "none.json"], "none.json"),
    ("split-on-other-data", lambda ws: (_edit_json(ws / "fail.json", lambda r: r.update(data_fingerprint="f" * 16)),
                                        ["evaluate", ws / "model", "--failures", ws / "fail.json"])[1], "other data"),
    # files that are not what they claim
    ("weights-corrupted", lambda ws: ((ws / "model" / "model.safetensors").write_bytes(b"\x00" * 64),
                                      ["evaluate", ws / "model"])[1], "model.safetensors"),
    ("record-not-utf8", lambda ws: ((ws / "model" / "model.json").write_bytes(b"\xff\xfe{}"),
                                    ["evaluate", ws / "model"])[1], "model.json"),
    ("record-unknown-key", lambda ws: (_edit_json(ws / "model" / "model.json", lambda r: r.update(colour="red")),
                                       ["evaluate", ws / "model"])[1], "model.json"),
    ("record-missing", lambda ws: ((ws / "model" / "model.json").unlink(), ["evaluate", ws / "model"])[1], "model.json"),
    ("checkpoint-missing", lambda ws: ["evaluate", ws / "nothing"], "nothing"),
    ("genotype-unknown-operation", lambda ws: (_edit_json(ws / "model" / "model.json", lambda r: _genotype(r, {
        "edges": [{"source": 0, "target": 1, "op": "conv_9x9"}], "activations": ["identity"],
        "shapes": [[8, 4, 4], [8, 4, 4]]})), ["evaluate", ws / "model"])[1], "conv_9x9"),
    ("genotype-unknown-key", lambda ws: (_edit_json(ws / "model" / "model.json", lambda r: _genotype(r, {
        "edges": [], "activations": [], "shapes": [[8, 4, 4]], "colour": 1})), ["evaluate", ws / "model"])[1], "colour"),
    ("image-that-is-not-an-image", lambda ws: ["data", f"imagefolder:{_image_folder(ws, b'not a png')}"], "broken.png"),
    ("tarball-corrupted", lambda ws: ["data", _truncated_tarball(ws)], "images.tar.gz"),
    ("tarball-random-bytes", lambda ws: ((ws / "x.tar.gz").write_bytes(b"\x1f\x8b" + b"z" * 300),
                                         ["data", ws / "x.tar.gz"])[1], "x.tar.gz"),
    ("npz-without-arrays", lambda ws: (np.savez(ws / "d.npz", x_train=np.zeros(3)), ["data", f"npz:{ws / 'd.npz'}"])[1],
     "lacks arrays"),
    ("data-path-missing", lambda ws: ["data", "npz:/nonexistent/d.npz"], "/nonexistent/d.npz"),
    ("data-kind-unknown", lambda ws: ["data", "pictures:somewhere"], "pictures:somewhere"),
    ("demo-scenario-unknown", lambda ws: ["demo", "--scenario", "camera", "--out", ws / "demo"], "--scenario"),
    ("cifar-c-without-labels", lambda ws: ["evaluate", ws / "model", "--corruption", "fog",
                                           "--corruption-dir", _cifar_c(ws, labels=False)], "labels.npy"),
    ("cifar-c-truncated", lambda ws: ["evaluate", ws / "model", "--corruption", "fog",
                                      "--corruption-dir", _cifar_c(ws, truncate=True)], "fog.npy"),
    ("corruption-unknown", lambda ws: ["evaluate", ws / "model", "--corruption", "smog"], "smog"),
    # spec options
    ("spec-option-not-a-number", lambda ws: ["data", "digits?test_fraction=abc"], "test_fraction='abc'"),
    ("spec-option-out-of-range", lambda ws: ["data", f"imagefolder:{_image_folder(ws)}?size=0"], "size='0'"),
    ("spec-option-unknown", lambda ws: ["data", "digits?test_fractoin=0.2"], "unknown option 'test_fractoin'"),
    # numbers out of range, through argparse
    ("unknown-argument", lambda ws: ["evaluate", ws / "model", "--colour", "red"], "--colour"),
    ("batch-size-zero", lambda ws: ["evaluate", ws / "model", "--batch-size", "0"], "--batch-size"),
    ("count-negative", lambda ws: ["failures", ws / "model", "--count", "-5", "--out", ws / "f.json"], "--count"),
    ("lr-negative", lambda ws: ["train", "--lr", "-1", "--out", ws / "m"], "--lr"),
    ("lr-not-a-number", lambda ws: ["train", "--lr", "fast", "--out", ws / "m"], "--lr"),
    ("fail-weight-negative", lambda ws: ["repair", ws / "model", "--fail-weight", "-1", "--out", ws / "r"], "--fail-weight"),
    ("val-fraction-one", lambda ws: ["repair", ws / "model", "--val-fraction", "1", "--out", ws / "r"], "--val-fraction"),
    ("train-val-fraction-above-one", lambda ws: ["train", "--val-fraction", "1.5", "--out", ws / "m"], "--val-fraction"),
    ("patience-negative", lambda ws: ["train", "--patience", "-1", "--out", ws / "m"], "--patience"),
    ("target-accuracy-five", lambda ws: ["train", "--target-accuracy", "5", "--out", ws / "m"], "--target-accuracy"),
    ("epochs-zero", lambda ws: ["train", "--epochs", "0", "--out", ws / "m"], "--epochs"),
    ("width-zero", lambda ws: ["train", "--width", "0", "--out", ws / "m"], "--width"),
    ("momentum-above-one", lambda ws: ["train", "--momentum", "1.5", "--out", ws / "m"], "--momentum"),
    ("train-batch-size-zero", lambda ws: ["train", "--train-batch-size", "0", "--out", ws / "m"], "--train-batch-size"),
    ("level-zero", lambda ws: ["localize", ws / "model", "--level", "0"], "--level"),
    ("level-above-the-neurons", lambda ws: ["localize", ws / "model", "--failures", ws / "fail.json", "--level", "100000"],
     "level 100000"),
    ("shift-ratio-zero", lambda ws: ["localize", ws / "model", "--shift-ratio", "0"], "--shift-ratio"),
    ("blocks-with-an-empty-name", lambda ws: ["localize", ws / "model", "--blocks", "block1,,block2"], "--blocks"),
    ("block-unknown", lambda ws: ["repair", ws / "model", "--failures", ws / "fail.json", "--block", "block9",
                                  "--out", ws / "r", *FAST], "block9"),
    ("localization-for-other-failures", lambda ws: (
        main([str(a) for a in ("localize", ws / "model", "--failures", ws / "fail.json", "--level", "10", "--out",
                               ws / "loc.json")]),
        ["repair", ws / "model", "--count", "7", "--localization", ws / "loc.json", "--out", ws / "r"])[1],
     "--localization"),
    ("localization-not-a-report", lambda ws: ((ws / "loc.json").write_text("{}"),
                                              ["repair", ws / "model", "--localization", ws / "loc.json", "--out", ws / "r"])[1],
     "loc.json"),
    ("localize-rows-negative", lambda ws: ["repair", ws / "model", "--localize-rows", "-1", "--out", ws / "r"],
     "--localize-rows"),
    ("holdout-one", lambda ws: ["failures", ws / "model", "--holdout", "1", "--out", ws / "f.json"], "--holdout"),
    ("holdout-zero", lambda ws: ["repair", ws / "model", "--holdout", "0", "--out", ws / "r"], "--holdout"),
    ("protocol-unknown", lambda ws: ["failures", ws / "model", "--protocol", "fair", "--out", ws / "f.json"],
     "--protocol"),
    ("cache-memory-not-a-size", lambda ws: ["repair", ws / "model", "--cache-memory", "lots", "--out", ws / "r"],
     "--cache-memory"),
    ("cache-memory-negative", lambda ws: ["repair", ws / "model", "--cache-memory", "-1G", "--out", ws / "r"],
     "--cache-memory"),
    ("retain-unknown", lambda ws: ["repair", ws / "model", "--retain", "forget", "--out", ws / "r"], "--retain"),
    ("retain-weight-negative", lambda ws: ["compare", ws / "model", "--retain-weight", "-1", "--out", ws / "c"],
     "--retain-weight"),
    ("method-unknown", lambda ws: ["repair", ws / "model", "--method", "magic", "--out", ws / "r"], "--method"),
    ("layer-unknown", lambda ws: ["repair", ws / "model", "--failures", ws / "fail.json", "--method", "arachne",
                                  "--layer", "head9", "--out", ws / "r", *FAST_TRAINING], "head9"),
    ("layer-is-a-convolution", lambda ws: ["repair", ws / "model", "--failures", ws / "fail.json", "--method", "arachne",
                                           "--layer", "stem.0", "--out", ws / "r", *FAST_TRAINING], "patches nn.Linear"),
    ("compare-layer-is-a-convolution", lambda ws: ["compare", ws / "model", "--failures", ws / "fail.json", "--methods",
                                                   "network-gradient,arachne", "--layer", "stem.0", "--out", ws / "c"],
     "patches nn.Linear"),
    ("test-validation-one", lambda ws: ["failures", ws / "model", "--test-validation", "1", "--out", ws / "f.json"],
     "--test-validation"),
    ("test-validation-beyond-the-pool", lambda ws: ["failures", ws / "model", "--holdout", "0.5", "--test-validation",
                                                    "0.6", "--out", ws / "f.json"], "or a smaller --test-validation"),
    ("bn-adapt-pool-under-the-paper-protocol", lambda ws: ["repair", ws / "model", "--method", "bn-adapt-pool",
                                                           "--protocol", "paper", "--count", "5", "--out", ws / "r",
                                                           *FAST_TRAINING], "heldout protocol"),
    ("block-is-a-linear-layer", lambda ws: ["repair", ws / "model", "--failures", ws / "fail.json", "--block", "linear",
                                            "--out", ws / "r", *FAST], "convolutional block"),
    ("search-epochs-zero", lambda ws: ["repair", ws / "model", "--search-epochs", "0", "--out", ws / "r"], "--search-epochs"),
    ("partial-channels-zero", lambda ws: ["repair", ws / "model", "--partial-channels", "0", "--out", ws / "r"],
     "--partial-channels"),
    ("severity-six", lambda ws: ["evaluate", ws / "model", "--corruption", "fog", "--severity", "6"], "--severity"),
    ("severities-repeated", lambda ws: ["evaluate", ws / "model", "--corruptions", "fog", "--severities", "3,3"],
     "--severities"),
    ("severities-zero", lambda ws: ["corrupt", "--severities", "0,1", "--out", ws / "c"], "--severities"),
    ("workers-zero", lambda ws: ["corrupt", "--workers", "0", "--out", ws / "c"], "--workers"),
    ("corrupt-out-not-empty", lambda ws: ["corrupt", "--corruptions", "fog", "--out", ws / "runs"], "--overwrite"),
    ("seeds-zero", lambda ws: ["compare", ws / "model", "--seeds", "0", "--out", ws / "c"], "--seeds"),
    ("budget-seconds-zero", lambda ws: ["compare", ws / "model", "--budget-seconds", "0", "--out", ws / "c"],
     "--budget-seconds"),
    ("methods-unknown", lambda ws: ["compare", ws / "model", "--methods", "archrepair,magic", "--out", ws / "c"], "magic"),
    ("methods-with-an-empty-name", lambda ws: ["compare", ws / "model", "--methods", "archrepair,", "--out", ws / "c"],
     "--methods"),
    ("compare-resume-without-a-comparison", lambda ws: ["compare", ws / "model", "--resume", "--out", ws / "c"],
     "nothing to resume"),
    ("model-unknown", lambda ws: ["train", "--model", "resnet19", "--out", ws / "m"], "resnet19"),
    ("model-cannot-take-the-image-size", lambda ws: ["train", "--model", "vgg16", "--width", "0.125", "--out", ws / "m"],
     "cannot take 8x8 images"),
    ("blocks-of-an-unknown-model", lambda ws: ["blocks", "resnet19"], "resnet19"),
    ("device-without-cuda", lambda ws: ["evaluate", ws / "model", "--device", "cuda:7"], "cuda"),
    ("data-with-other-classes", lambda ws: (np.savez(ws / "three.npz", x_train=np.zeros((6, 8, 8, 1), np.uint8),
                                                     y_train=np.array([0, 1, 2] * 2), x_test=np.zeros((3, 8, 8, 1), np.uint8),
                                                     y_test=np.array([0, 1, 2])),
                                            ["evaluate", ws / "model", "--data", ws / "three.npz"])[1], "predicts 10 classes"),
    # options that mean nothing without another, or with another (#28)
    ("severity-without-corruption", lambda ws: ["evaluate", ws / "model", "--severity", "3"],
     "--severity has no effect without --corruption"),
    ("severity-with-corruptions", lambda ws: ["evaluate", ws / "model", "--severity", "3", "--corruptions", "all"],
     "--severity has no effect without --corruption"),
    ("corruption-dir-without-corruption", lambda ws: ["evaluate", ws / "model", "--corruption-dir", ws / "runs"],
     "--corruption-dir has no effect without --corruption or --corruptions"),
    ("corruption-seed-without-corruption", lambda ws: ["repair", ws / "model", "--corruption-seed", "2", "--out",
                                                       ws / "r"], "--corruption-seed has no effect without --corruption"),
    ("severities-without-corruptions", lambda ws: ["evaluate", ws / "model", "--severities", "1,2"],
     "--severities has no effect without --corruptions"),
    ("per-severity-without-corruptions", lambda ws: ["evaluate", ws / "model", "--per-severity"],
     "--per-severity has no effect without --corruptions"),
    ("count-with-a-failure-split", lambda ws: ["repair", ws / "model", "--failures", ws / "fail.json", "--count", "5",
                                               "--out", ws / "r"], "--count has no effect with --failures"),
    ("protocol-with-a-failure-split", lambda ws: ["localize", ws / "model", "--failures", ws / "fail.json", "--protocol",
                                                  "paper"], "--protocol has no effect with --failures"),
    ("holdout-with-a-failure-split", lambda ws: ["compare", ws / "model", "--failures", ws / "fail.json", "--holdout",
                                                 "0.3", "--out", ws / "c"], "--holdout has no effect with --failures"),
    ("failure-seed-with-a-failure-split", lambda ws: ["compare", ws / "model", "--failures", ws / "fail.json",
                                                      "--failure-seed", "1", "--out", ws / "c"],
     "--failure-seed has no effect with --failures"),
    ("plain-validation-under-heldout", lambda ws: ["repair", ws / "model", "--plain-validation", "--out", ws / "r"],
     "--plain-validation has no effect without --protocol=paper"),
    ("retain-weight-without-distill", lambda ws: ["repair", ws / "model", "--retain-weight", "3", "--out", ws / "r"],
     "--retain-weight has no effect without --retain=distill"),
    ("localization-with-a-block", lambda ws: ["repair", ws / "model", "--localization", ws / "fail.json", "--block",
                                              "block2", "--out", ws / "r"], "--localization has no effect with --block"),
    ("holdout-under-the-paper-protocol", lambda ws: ["failures", ws / "model", "--protocol", "paper", "--holdout", "0.3",
                                                     "--out", ws / "f.json"], "--holdout has no effect with --protocol=paper"),
    ("level-with-an-absolute-threshold", lambda ws: ["localize", ws / "model", "--level", "10", "--absolute", "0.5"],
     "--level has no effect with --absolute"),
    ("shift-ratio-without-the-shift-localiser", lambda ws: ["localize", ws / "model", "--shift-ratio", "0.3"],
     "--shift-ratio has no effect without --method=shift"),
    ("import-classes-with-data", lambda ws: ["import", "--torchvision", "resnet18", "--weights", ws / "w.pth", "--data",
                                             "digits", "--classes", "a,b", "--out", ws / "i"],
     "--classes has no effect with --data"),
    ("keep-level-under-the-paper-protocol", lambda ws: ["repair", ws / "model", "--protocol", "paper", "--keep-level",
                                                        "0.01", "--out", ws / "r"],
     "--keep-level has no effect with --protocol=paper"),
    ("weights-not-finite", lambda ws: (_poison(ws / "model"), ["evaluate", ws / "model"])[1], "not finite"),
    ("keep-level-zero", lambda ws: ["repair", ws / "model", "--keep-level", "0", "--out", ws / "r"], "--keep-level"),
    ("keep-level-above-one", lambda ws: ["compare", ws / "model", "--keep-level", "1.5", "--out", ws / "c"],
     "--keep-level"),
    ("repair-budget-seconds-zero", lambda ws: ["repair", ws / "model", "--budget-seconds", "0", "--out", ws / "r"],
     "--budget-seconds"),
    ("repair-budget-epochs-zero", lambda ws: ["repair", ws / "model", "--budget-epochs", "0", "--out", ws / "r"],
     "--budget-epochs"),
    ("repair-block-empty", lambda ws: ["repair", ws / "model", "--block", "", "--out", ws / "r", *FAST], "--block"),
    ("corrupt-gray-data", lambda ws: ["corrupt", "--data", "digits", "--corruptions", "fog", "--out", ws / "c"],
     "RGB images"),
    ("train-out-empty", lambda ws: ["train", "--epochs", "1", "--out", ""], "--out is empty"),
    ("repair-out-blank", lambda ws: ["repair", ws / "model", "--out", " "], "--out is empty"),
    ("search-option-for-a-method-that-does-not-search",
     lambda ws: ["repair", ws / "model", "--method", "block-gradient", "--search-epochs", "3", "--out", ws / "r"],
     "--search-epochs has no effect: block-gradient does not search"),
    ("discretisation-rule-for-methods-that-do-not-search",
     lambda ws: ["compare", ws / "model", "--methods", "train-more-block,apricot", "--rule", "top2", "--out", ws / "c"],
     "--rule has no effect: none of train-more-block, apricot search"),
    ("architecture-rate-in-a-dry-run-of-a-method-that-does-not-search",
     lambda ws: ["repair", ws / "model", "--method", "augmix", "--arch-lr", "0.1", "--dry-run", "--out", ws / "r"],
     "--arch-lr has no effect"),
    # data read wrongly (#28)
    ("npz-channels-first", lambda ws: ["data", _npz(ws, x=np.zeros((6, 3, 8, 8), np.uint8))], "(N, C, H, W)"),
    ("npz-channel-axis-not-last", lambda ws: ["data", _npz(ws, x=np.zeros((6, 8, 8, 5), np.uint8))],
     "1 or 3 channels last"),
    ("npz-labels-not-whole", lambda ws: ["data", _npz(ws, y=np.array([0, 1, 0.5, 1, 0, 1]))], "not whole numbers"),
    ("npz-labels-negative", lambda ws: ["data", _npz(ws, y=np.array([0, 1, -1, 1, 0, 1]))], "negative labels"),
    ("npz-one-class", lambda ws: ["data", _npz(ws, y=np.zeros(6, np.int64), y_test=np.zeros(3, np.int64))],
     "at least 2"),
    ("npz-test-class-not-in-training", lambda ws: ["data", _npz(ws, y_test=np.array([0, 1, 2]))],
     "have no training images"),
    ("npz-empty-test-split", lambda ws: ["data", _npz(ws, x_test=np.zeros((0, 8, 8, 1), np.uint8),
                                                      y_test=np.zeros(0, np.int64))], "test split has no images"),
    ("imagefolder-test-class-without-training-images", lambda ws: ["data", f"imagefolder:{_orphan_class(ws)}"],
     "'c'"),
    # field sets (#29)
    ("field-empty", lambda ws: _field_failures(ws, _field_folder(ws, {})), "holds no images"),
    ("field-without-failures", lambda ws: _field_failures(ws, _field_npz(ws, *_rightly_classified(ws))),
     "no failures to repair"),
    ("field-labels-out-of-range", lambda ws: _field_failures(ws, _field_npz(ws, np.zeros((4, 8, 8), np.uint8),
                                                                             np.array([0, 1, 12, 3]))), "0..9"),
    ("field-csv-outside-its-folder", lambda ws: _field_failures(ws, _field_csv(ws, [("../outside.png", "1")])),
     "points outside the CSV's folder"),
    ("field-csv-missing-file", lambda ws: _field_failures(ws, _field_csv(ws, [("images/none.png", "1")])),
     "'images/none.png'"),
    ("field-undecodable-images", lambda ws: _field_failures(ws, _field_folder(ws, {"3": 2}, broken=("3/x.png", "3/y.png"))),
     "2 image(s) cannot be decoded: '3/x.png', '3/y.png'"),
    ("field-unknown-class", lambda ws: _field_failures(ws, _field_folder(ws, {"3": 2, "cat": 1})),
     "'cat' are not among the model's classes (0, 1, 2"),
    ("field-is-the-training-data", lambda ws: _field_failures(ws, _field_npz(ws, *_training_images())),
     "one of the model's training images"),
    ("field-and-corruption", lambda ws: [*_field_failures(ws, _field_folder(ws, {"3": 2})), "--corruption", "fog"],
     "not both"),
]


def _field_failures(ws: Path, field: Path) -> list:
    return ["failures", ws / "model", "--field", field, "--out", ws / "field-split.json"]


def _field_folder(ws: Path, counts: dict[str, int], broken: tuple[str, ...] = ()) -> Path:
    """A field folder of ``<class>/<image>``: ``counts[class]`` 8x8 gray images, plus ``broken`` files
    that are not images although named so."""
    from PIL import Image

    root = ws / "field"
    root.mkdir()
    for label, count in counts.items():
        (root / label).mkdir()
        for index in range(count):
            Image.fromarray(np.full((8, 8), 30 * index, np.uint8)).save(root / label / f"{index}.png")
    for name in broken:
        (root / name).write_bytes(b"not a png")
    return root


def _field_npz(ws: Path, x: np.ndarray, y: np.ndarray) -> Path:
    np.savez(ws / "field.npz", x=x, y=y)
    return ws / "field.npz"


def _field_csv(ws: Path, rows: list[tuple[str, str]]) -> Path:
    from PIL import Image

    (ws / "csv").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(ws / "outside.png")
    (ws / "csv" / "field.csv").write_text("path,label\n" + "".join(f"{path},{label}\n" for path, label in rows))
    return ws / "csv" / "field.csv"


def _training_images() -> tuple[np.ndarray, np.ndarray]:
    from archrepair.data import load_data

    data = load_data("digits")
    return data.x_train[:50, ..., 0], data.y_train[:50]


def _rightly_classified(ws: Path) -> tuple[np.ndarray, np.ndarray]:
    """Test images the workspace's model gets right (as 8x8 gray arrays) and their labels."""
    from archrepair.base_model import make_loader
    from archrepair.checkpoint import load_checkpoint
    from archrepair.data import load_data
    from archrepair.evaluate import predict_logits

    data, (model, record) = load_data("digits"), load_checkpoint(ws / "model")
    right = predict_logits(model, make_loader(data, "test", record)).argmax(1).numpy() == data.y_test
    return data.x_test[right][:60, ..., 0], data.y_test[right][:60]


def _npz(ws: Path, x=None, y=None, x_test=None, y_test=None) -> str:
    """An npz data spec: six 8x8 gray training images of classes 0 and 1 and three test images,
    with any array replaced."""
    x = np.zeros((6, 8, 8, 1), np.uint8) if x is None else x
    y = np.array([0, 1] * 3) if y is None else y
    x_test = np.zeros((3, *x.shape[1:]), np.uint8) if x_test is None else x_test
    y_test = np.array([0, 1, 0]) if y_test is None else y_test
    np.savez(ws / "d.npz", x_train=x, y_train=y, x_test=x_test, y_test=y_test)
    return f"npz:{ws / 'd.npz'}"


def _orphan_class(ws: Path) -> Path:
    """An image folder whose test split has a class ``c`` that training lacks."""
    from PIL import Image

    folder = _image_folder(ws)
    (folder / "test" / "c").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "test" / "c" / "0.png")
    return folder


def _poison(folder: Path) -> None:
    """A NaN in one weight of the checkpoint in ``folder``."""
    from safetensors.torch import load_file, save_file

    weights = load_file(str(folder / "model.safetensors"))
    name = sorted(weights)[0]
    weights[name].view(-1)[0] = float("nan")
    save_file(weights, str(folder / "model.safetensors"))


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("setup, expected", [pytest.param(s, e, id=n) for n, s, e in CASES])
def test_bad_input_is_one_line_and_touches_nothing(ws, capsys, setup, expected):
    arguments = [str(a) for a in setup(ws)]
    before = _hashes(ws)
    status = main(arguments)
    err = capsys.readouterr().err
    assert status == 1, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("note:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert expected in lines[0], lines[0]
    assert _hashes(ws) == before


def test_the_suite_covers_every_case_of_the_issue_and_twenty_more():
    assert len(CASES) >= 60 and len({name for name, _, _ in CASES}) == len(CASES)


def test_two_runs_cannot_write_one_output_at_once(ws, capsys):
    from archrepair._checks import output_lock

    with output_lock(ws / "f.json"):
        status = main(["failures", str(ws / "model"), "--count", "5", "--out", str(ws / "f.json")])
    assert status == 1 and "being written by another archrepair run" in capsys.readouterr().err
    assert not (ws / "f.json").exists() and not (ws / ".f.json.lock").exists()


def test_overwrite_replaces_only_what_the_command_writes(ws, capsys):
    notes = (ws / "runs" / "notes.txt").read_bytes()
    status = main(["train", "--epochs", "1", "--out", str(ws / "runs"), "--overwrite"])
    assert status == 0, capsys.readouterr().err
    assert (ws / "runs" / "notes.txt").read_bytes() == notes
    assert (ws / "runs" / "model.safetensors").exists() and (ws / "runs" / "model.json").exists()


def test_corrupt_writes_severities_in_increasing_order(ws, capsys):
    from archrepair.data import load_data
    from archrepair.data.corruptions import corrupt

    rng = np.random.default_rng(0)
    np.savez(ws / "rgb.npz", x_train=rng.integers(0, 256, (4, 32, 32, 3), np.uint8), y_train=np.array([0, 1, 0, 1]),
             x_test=rng.integers(0, 256, (3, 32, 32, 3), np.uint8), y_test=np.array([0, 1, 1]))
    status = main(["corrupt", "--data", f"npz:{ws / 'rgb.npz'}", "--corruptions", "gaussian_noise", "--severities", "5,1",
                   "--workers", "1", "--out", str(ws / "c")])
    assert status == 0, capsys.readouterr().err
    written = np.load(ws / "c" / "gaussian_noise.npy")
    x_test = load_data(f"npz:{ws / 'rgb.npz'}").x_test
    np.testing.assert_array_equal(written[: len(x_test)], corrupt(x_test, "gaussian_noise", 1, 0))
    np.testing.assert_array_equal(written[len(x_test):], corrupt(x_test, "gaussian_noise", 5, 0))


def test_an_image_folder_cache_sees_added_images(ws, capsys):
    from PIL import Image

    folder = _image_folder(ws)
    assert main(["data", str(folder), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "train" / "b" / "new.png")
    (folder / "train" / "b" / "readme.txt").write_text("not an image")
    assert main(["data", str(folder), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["train"] == first["train"] + 1
    assert "skipped 1 file" in captured.err and "readme.txt" in captured.err


def test_labels_with_gaps_are_read_with_a_one_line_note(ws, capsys):
    status = main(["data", _npz(ws, y=np.array([0, 7] * 3), y_test=np.array([0, 7, 0])), "--json"])
    captured = capsys.readouterr()
    assert status == 0 and json.loads(captured.out)["num_classes"] == 8
    notes = [line for line in captured.err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "labels use 2 of 0..7" in notes[0] and "8 classes" in notes[0]


def test_an_image_folder_mixing_gray_and_rgb_images_is_read_as_rgb_with_a_note(ws, capsys):
    from PIL import Image

    folder = _image_folder(ws)
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(folder / "train" / "a" / "gray.png")
    status = main(["data", f"imagefolder:{folder}?size=8", "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert json.loads(captured.out)["image_shape"] == [8, 8, 3]
    assert "converted its 1 grayscale images to RGB" in captured.err


def test_a_cache_folder_that_cannot_be_written_names_the_variable(ws, capsys, monkeypatch):
    monkeypatch.setenv("ARCHREPAIR_CACHE_DIR", str(ws / "fail.json" / "cache"))  # below a file
    before = _hashes(ws)
    status = main(["data", f"imagefolder:{_image_folder(ws)}"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("note:")]
    assert status == 1 and len(lines) == 1 and "ARCHREPAIR_CACHE_DIR" in lines[0] and "Traceback" not in err
    assert {k: v for k, v in _hashes(ws).items() if not k.startswith("images")} == before


WRONG = [3, 2.5, True, "text", ["a"], {"a": 1}, b"bytes", object(), np.arange(3), -1]


def _api_cases():
    """``(function, valid keyword arguments, argument, the types it takes)`` of every public API
    function's every checked argument."""
    import archrepair
    from archrepair import Budget, LocalizeConfig, RepairSettings, TaskConfig

    path, text, count = (str, Path), (str,), (int,)
    common = {"checkpoint": "/nonexistent/model"}
    return [
        (archrepair.load_problem, common, {"checkpoint": path, "data": text, "corruption": (dict,), "field": path,
                                           "device": text, "batch_size": count, "amp": (bool,),
                                           "channels_last": (bool,)}),
        (archrepair.localize, common, {"checkpoint": path, "failures": path, "data": text, "count": count,
                                       "seed": count, "train_examples": count, "blocks": (list, tuple),
                                       "config": (LocalizeConfig,), "device": text}),
        (archrepair.repair, common, {"checkpoint": path, "failures": path, "method": text, "out": path, "data": text,
                                     "count": count, "settings": (RepairSettings,), "task": (TaskConfig,),
                                     "budget": (Budget,)}),
        (archrepair.compare, common | {"methods": ["auto"]},
         {"checkpoint": path, "methods": (list, tuple), "failures": path, "seeds": count, "data": text,
          "count": count, "failure_seed": count, "settings": (RepairSettings,), "task": (TaskConfig,),
          "budget": (Budget,)}),
        (archrepair.get_repairer, {"name": "auto"}, {"name": text, "settings": (RepairSettings,),
                                                     "budget": (Budget,)}),
        (archrepair.get_model, {"name": "small_cnn"}, {"name": text, "num_classes": count, "in_channels": count,
                                                       "width": (int, float)}),
    ]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_every_public_api_argument_of_a_wrong_type_is_refused_naming_it(data):
    from archrepair import ArchRepairError

    function, valid, takes = data.draw(st.sampled_from(_api_cases()), label="function")
    name = data.draw(st.sampled_from(sorted(takes)), label="argument")
    wrong = data.draw(st.sampled_from([value for value in WRONG if not (
        isinstance(value, takes[name]) and not (isinstance(value, bool) and bool not in takes[name]))]), label="value")
    with pytest.raises(ArchRepairError) as raised:
        function(**(valid | {name: wrong}))
    assert f"{function.__name__}(): {name}" in str(raised.value) and "\n" not in str(raised.value)
    assert isinstance(raised.value, (TypeError, ValueError))


def test_the_python_api_never_writes_into_a_users_folder_or_its_input(digits_checkpoint, tmp_path):
    import archrepair

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "model.json").write_text("my own file")
    before = {path: path.read_bytes() for path in [*mine.iterdir(), *Path(digits_checkpoint).iterdir()]}
    for out, said in ((mine, "exists and is not empty; pass overwrite=True"), (digits_checkpoint, "is or contains the input")):
        with pytest.raises(archrepair.ArchRepairError, match=said):
            archrepair.repair(digits_checkpoint, method="block-gradient", out=out, count=10,
                              budget=archrepair.Budget(epochs=1))
    assert {path: path.read_bytes() for path in before} == before
