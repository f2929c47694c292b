"""Failures from the field (#29): a labelled image set a user collected is read in its three forms,
brought to the model, split (seeded, stratified, duplicates on one side) and judged on its own
hold-out and on the home test set; the field hold-out never reaches a repair."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import numpy as np
import pytest

from archrepair import ArchRepairError
from archrepair._api import load_problem
from archrepair._repair import TaskConfig, make_task
from archrepair._repair.base import validation_figures
from archrepair.cli import main
from archrepair.data.field import FieldSet, conform, read_field
from archrepair.data.scenario import select_failures


def _field_images(digits, count: int = 400, duplicates: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy copies of the digits' test images (the model errs on a good share of them), with the first
    ``duplicates`` images repeated once more (exact duplicates), shuffled."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(digits.y_test), count, replace=True)
    x = np.clip(digits.x_test[rows, ..., 0].astype(int) + rng.normal(0, 70, (count, 8, 8)), 0, 255).astype(np.uint8)
    y = digits.y_test[rows]
    x, y = np.concatenate([x, x[:duplicates]]), np.concatenate([y, y[:duplicates]])
    order = rng.permutation(len(y))
    return x[order], y[order]


@pytest.fixture(scope="module")
def field_npz(tmp_path_factory, digits):
    path = tmp_path_factory.mktemp("field") / "field.npz"
    x, y = _field_images(digits)
    np.savez(path, x=x, y=y)
    return path


def _hash(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def test_a_field_split_is_seeded_stratified_and_keeps_duplicates_on_one_side():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(5), 80)
    predictions = np.where(rng.random(400) < 0.3, (labels + 1) % 5, labels)
    groups = np.arange(400)
    groups[200:260] = groups[0:60]  # 60 pairs of identical images
    split = select_failures(predictions, labels, 50, 3, "heldout", 0.5, 0.2, groups=groups)
    again = select_failures(predictions, labels, 50, 3, "heldout", 0.5, 0.2, groups=groups)
    assert asdict(split) == asdict(again)
    assert asdict(split) != asdict(select_failures(predictions, labels, 50, 4, "heldout", 0.5, 0.2, groups=groups))
    held, validating = set(split.holdout_indices), set(split.validation_indices)
    for first, second in zip(range(0, 60), range(200, 260), strict=True):
        assert (first in held) == (second in held) and (first in validating) == (second in validating)
    per_class = np.bincount(labels[split.holdout_indices], minlength=5)
    assert per_class.min() >= 35 and per_class.max() <= 45  # about half of each class's 80
    assert not held & set(split.fail_indices) and not validating & set(split.fail_indices)


def test_the_field_holdout_never_reaches_a_repair_by_index_or_by_image(digits_checkpoint, field_npz):
    problem = load_problem(digits_checkpoint, field=str(field_npz), device="cpu")
    split = problem.failures(None, 1000, seed=2)
    assert split.source == "field" and problem.data.home is not None
    assert len(split.extra["home_predictions"]) == len(problem.data.home.y_test)
    task = make_task(problem.model, problem.record, problem.data, split, TaskConfig(train_examples=200, seed=2))
    held = set(split.holdout_indices)
    field_rows = set(split.fail_indices) | set(task.repair.field_val_indices.tolist()) | set(task.keep.field_indices.tolist())
    assert field_rows and not field_rows & held
    assert set(task.repair.field_val_indices.tolist()) | set(task.keep.field_indices.tolist()) == set(split.validation_indices)
    held_images = {_hash(problem.data.x_test[i]) for i in held}
    seen = {_hash(image) for image in task.repair.x} | {_hash(image) for image in task.keep.x}
    assert not held_images & seen  # its duplicates too stayed on the hold-out's side
    # validation weighs both populations: home rows and field rows, and reports each one's accuracy
    assert len(task.repair.field_val_indices) and len(task.val_indices) > len(task.repair.field_val_indices)
    assert (task.repair.x[task.repair.field_val_rows] == problem.data.x_test[task.repair.field_val_indices]).all()
    assert set(task.repair.field_val_rows.tolist()) <= set(task.val_indices.tolist())
    figures = validation_figures(task, task.model)
    in_field = len(task.repair.field_val_rows)
    pooled = figures["val_field_accuracy"] * in_field + figures["val_home_accuracy"] * (len(task.val_indices) - in_field)
    assert pooled / len(task.val_indices) == pytest.approx(figures["val_accuracy"])
    assert figures["val_field_accuracy"] < figures["val_home_accuracy"]  # the field is where the model fails
    # the fit part's images the original gets right are fit rows (retain rows) for every method but
    # "train more", whose rows hold home training examples only
    retained = task.repair.field_fit_indices
    fit_part = set(range(len(problem.data.y_test))) - held - set(split.validation_indices)
    predicted = problem.test_predictions("")
    right = {i for i in fit_part if predicted[i] == problem.data.y_test[i]}
    assert len(retained) and set(retained.tolist()) == right
    assert set(task.repair.field_fit_rows.tolist()) <= set(task.fit_indices.tolist())
    assert (task.repair.x[task.repair.field_fit_rows] == problem.data.x_test[retained]).all()
    assert not set(task.fit_others.tolist()) & set(task.repair.field_fit_rows.tolist())
    assert set(task.fit_others.tolist()) | set(task.fit_failures.tolist()) | set(task.repair.field_fit_rows.tolist()) \
        == set(task.fit_indices.tolist())
    assert asdict(problem.failures(None, 1000, seed=2)) == asdict(split)  # a repeated run: the same split


def test_a_field_repair_is_judged_on_the_field_holdout_and_the_home_test_set(digits_checkpoint, field_npz, tmp_path, capsys):
    assert main(["failures", str(digits_checkpoint), "--field", str(field_npz), "--out", str(tmp_path / "f.json")]) == 0
    capsys.readouterr()
    status = main(["repair", str(digits_checkpoint), "--field", str(field_npz), "--failures", str(tmp_path / "f.json"),
                   "--method", "block-gradient", "--train-examples", "200", "--budget-epochs", "2",
                   "--out", str(tmp_path / "r"), "--json"])
    out = capsys.readouterr().out
    assert status == 0
    report = json.loads(out)
    split = json.loads((tmp_path / "f.json").read_text())
    returned = report["judged"]["returned"]
    assert returned["holdout"]["examples"] == len(split["holdout_indices"])
    assert returned["home"]["examples"] == 540 and report["field"]["images"] == 440
    table = (tmp_path / "r" / "report.md").read_text().split("|---|---|---|---|\n")[1].splitlines()
    assert table[0].startswith("| **field hold-out") and f"{returned['holdout']['change_points']:+.2f} points" in table[0]
    assert table[1].startswith("| **home test set (540") and \
        f"negative flips {100 * returned['home']['negative_flip_rate']:.2f}%" in table[1]
    assert main(["evaluate", str(tmp_path / "r"), "--field", str(field_npz), "--failures", str(tmp_path / "f.json"),
                 "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["holdout"]["change_points"] == returned["holdout"]["change_points"]
    assert evaluated["home"]["change_points"] == returned["home"]["change_points"]
    # a field split is refused without its field set
    status = main(["evaluate", str(digits_checkpoint), "--failures", str(tmp_path / "f.json")])
    assert status == 1 and "give its --field" in capsys.readouterr().err


def test_class_names_are_matched_by_name_and_csv_paths_are_relative(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    for index, label in enumerate(["7", "2", "7", "0"]):
        Image.fromarray(np.full((8, 8), 10 * index, np.uint8)).save(tmp_path / "images" / f"{index}.png")
    (tmp_path / "field.csv").write_text("path,label\n" + "".join(f"images/{i}.png,{label}\n"
                                                                  for i, label in enumerate(["seven", "two", "seven", "zero"])))
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    from archrepair.data.field import match_labels

    field = read_field(str(tmp_path / "field.csv"))
    assert field.sources == ["images/0.png", "images/1.png", "images/2.png", "images/3.png"]
    assert match_labels(field, names).tolist() == [7, 2, 7, 0]
    assert match_labels(field, names[::-1]).tolist() == [2, 7, 2, 9]  # another class order: mapped by name
    with pytest.raises(ArchRepairError, match=r"'seven', 'two', 'zero'|'seven', 'two'"):
        match_labels(field, ["cat", "dog"])


def test_gray_to_rgb_replicates_and_rgb_to_gray_takes_the_luma():
    rng = np.random.default_rng(0)
    gray = FieldSet("g", [rng.integers(0, 256, (8, 8), dtype=np.uint8) for _ in range(3)], ["0"] * 3, ["a"] * 3, False)
    rgb, notes = conform(gray, 8, 8, 3)
    assert rgb.shape == (3, 8, 8, 3) and all(np.array_equal(rgb[..., c], np.stack(gray.images)) for c in range(3))
    assert notes == ["converted 3 grayscale field images to RGB by replicating their channel"]
    colour = FieldSet("c", [rng.integers(0, 256, (10, 10, 3), dtype=np.uint8) for _ in range(2)], ["0"] * 2, ["a"] * 2, False)
    flat, notes = conform(colour, 10, 10, 1)
    expected = np.stack(colour.images).astype(float) @ np.array([0.299, 0.587, 0.114])
    assert flat.shape == (2, 10, 10, 1) and np.abs(flat[..., 0] - expected).max() <= 1
    assert "by luma" in notes[0]
    resized, notes = conform(colour, 5, 7, 3)
    assert resized.shape == (2, 5, 7, 3) and "resized 2 of 2 field images to the model's 5x7" in notes[0]


def test_every_image_mode_is_brought_to_8_bits_by_a_stated_rule(tmp_path):
    """16-bit gray is scaled (not clipped), a palette expanded, CMYK converted, alpha dropped: each
    kind said once in a note, none a different picture than its pixels say."""
    from PIL import Image

    gradient16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)  # 0 .. 63,000
    for folder in ("a", "b"):
        (tmp_path / "f" / folder).mkdir(parents=True)
    Image.fromarray(gradient16).save(tmp_path / "f" / "a" / "wide.png")
    palette = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).convert("P")
    palette.save(tmp_path / "f" / "a" / "palette.png")
    Image.new("CMYK", (8, 8), (0, 255, 0, 0)).save(tmp_path / "f" / "b" / "cmyk.tif")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    Image.fromarray(rgba).save(tmp_path / "f" / "b" / "clear.png")
    field_set = read_field(str(tmp_path / "f"))
    images = dict(zip(field_set.sources, field_set.images))
    wide = images["a/wide.png"]
    assert wide.dtype == np.uint8 and wide.max() == round(63000 / 257) and wide.min() == 0  # scaled, not clipped to 255
    assert np.array_equal(wide, np.round(gradient16 / 257).astype(np.uint8))
    assert images["b/cmyk.tif"].shape == (8, 8, 3) and images["b/cmyk.tif"][0, 0, 0] == 255  # magenta: red on
    assert np.array_equal(images["b/clear.png"], rgba[..., :3])  # the colours, alpha dropped
    notes = " ".join(field_set.notes)
    for said in ("16-bit images scaled to 8 bits", "palette images expanded", "CMYK images converted to RGB",
                 "alpha channel had it dropped"):
        assert said in notes, said


def _csv(tmp_path, lines: list[str]) -> str:
    for name in ("one.png", "two.png"):
        from PIL import Image

        Image.fromarray(np.full((8, 8), 100 if name == "one.png" else 200, np.uint8)).save(tmp_path / name)
    (tmp_path / "field.csv").write_text("\n".join(lines) + "\n")
    return str(tmp_path / "field.csv")


def test_a_csv_that_lists_an_image_twice_counts_it_once_and_says_so(tmp_path):
    field_set = read_field(_csv(tmp_path, ["path,label", "one.png,3", "two.png,4", "one.png,3"]))
    assert field_set.sources == ["one.png", "two.png"] and field_set.labels == ["3", "4"]
    assert any("dropped 1 repeated CSV row" in note for note in field_set.notes)


@pytest.mark.parametrize("lines, message", [
    (["path,label", "one.png,3", "two.png,four"], "line 3 labels its image with a class name ('four') where line 2"),
    (["one.png,cat", "two.png,7"], "line 2 labels its image with a class index ('7') where line 1"),
    (["path,label", "one.png,3", "two.png,4", "one.png,5"], "line 4 labels 'one.png' '5', line 2 labels it '3'"),
])
def test_a_csv_whose_labels_contradict_themselves_is_refused_naming_the_line(tmp_path, lines, message):
    spec = _csv(tmp_path, lines)
    before = {path: path.read_bytes() for path in tmp_path.iterdir()}
    with pytest.raises(ArchRepairError, match="field set .*field.csv") as raised:
        read_field(spec)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert {path: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_errors_about_a_field_split_name_the_field_set_and_the_option(digits_checkpoint, tmp_path, digits):
    x, y = _field_images(digits, count=3, duplicates=0)
    np.savez(tmp_path / "tiny.npz", x=x, y=y)
    with pytest.raises(ArchRepairError) as raised:
        load_problem(digits_checkpoint, field=str(tmp_path / "tiny.npz")).failures(count=10)
    assert "the field set" in str(raised.value) and "tiny.npz" in str(raised.value)
    assert "(--field) has too few examples (3) for --holdout 0.5" in str(raised.value)
    assert "test set" not in str(raised.value)
    x, y = _field_images(digits, count=200, duplicates=0)
    np.savez(tmp_path / "some.npz", x=x, y=y)
    with pytest.raises(ArchRepairError) as raised:
        load_problem(digits_checkpoint, field=str(tmp_path / "some.npz")).failures(count=10, holdout=0.99)
    assert "--holdout 0.99 leaves no room for the validation part of the field set" in str(raised.value)
    assert "some.npz" in str(raised.value) and "got 0.2" not in str(raised.value)


def test_a_field_spec_may_name_its_kind_like_a_data_spec_and_the_kind_must_agree(digits, tmp_path):
    x, y = _field_images(digits, count=40, duplicates=0)
    np.savez(tmp_path / "field.npz", x=x, y=y)
    bare, named = read_field(str(tmp_path / "field.npz")), read_field(f"npz:{tmp_path / 'field.npz'}")
    assert named.labels == bare.labels and all(np.array_equal(a, b) for a, b in zip(named.images, bare.images))
    with pytest.raises(ArchRepairError, match=r"says csv but .* is a npz") as raised:
        read_field(f"csv:{tmp_path / 'field.npz'}")
    assert "\n" not in str(raised.value)
    with pytest.raises(ArchRepairError, match="does not exist"):
        read_field(f"npz:{tmp_path / 'missing.npz'}")
