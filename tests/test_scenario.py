"""The failure split: D_fail holds only misclassified examples and never overlaps the evaluation split."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from archrepair import ArchRepairError
from archrepair.data import FailureSplit, select_failures
from archrepair.data.scenario import holdout_split
from archrepair._repair import TaskConfig


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 4), min_size=1, max_size=200),
    noise=st.integers(0, 2**31 - 1),
    count=st.integers(1, 300),
    seed=st.integers(0, 1000),
    protocol=st.sampled_from(["heldout", "paper"]),
)
def test_failure_split_partitions_the_test_set(labels, noise, count, seed, protocol):
    labels = np.array(labels)
    predictions = np.where(np.random.default_rng(noise).random(len(labels)) < 0.4, (labels + 1) % 5, labels)
    if protocol == "heldout" and len(labels) < 4:
        with pytest.raises(ArchRepairError, match="too few"):
            select_failures(predictions, labels, count, seed, protocol)
        return
    held = set(holdout_split(labels, 0.5, seed)[1].tolist()) if protocol == "heldout" else set()
    candidates = [i for i in range(len(labels)) if predictions[i] != labels[i] and i not in held]
    if not candidates:
        with pytest.raises(ArchRepairError, match="no failures"):
            select_failures(predictions, labels, count, seed, protocol)
        return
    split = select_failures(predictions, labels, count, seed, protocol)
    fail, keep = set(split.fail_indices), set(split.eval_indices)
    assert not fail & keep and not fail & set(split.holdout_indices)
    assert fail | keep == set(range(len(labels)))
    assert set(split.holdout_indices) == held
    assert fail <= set(candidates)
    assert len(fail) == min(count, len(candidates))
    assert split.fail_indices == select_failures(predictions, labels, count, seed, protocol).fail_indices


def test_split_round_trips(tmp_path):
    split = select_failures(np.array([1, 1, 0, 0]), np.array([0, 1, 1, 0]), 1, seed=2, protocol="paper")
    split.save(tmp_path / "f.json")
    assert FailureSplit.load(tmp_path / "f.json") == split


def test_missing_split_file_is_explained(tmp_path):
    with pytest.raises(ArchRepairError, match="archrepair failures"):
        FailureSplit.load(tmp_path / "none.json")


def test_repair_task_validates_on_training_examples_only(digits):
    import torch

    from archrepair.checkpoint import ModelRecord
    from archrepair.data import select_failures
    from archrepair._repair import make_task

    predictions = (digits.y_test + (np.arange(len(digits.y_test)) % 7 == 0)) % 10
    split = select_failures(predictions, digits.y_test, 20, 0)
    record = ModelRecord("small_cnn", {}, [0.0], [1.0], [8, 8, 1], digits.class_names)
    task = make_task(torch.nn.Identity(), record, digits, split, TaskConfig(train_examples=300, val_fraction=0.2, seed=3,
                     thin_validation=False))
    failures = set(range(task.repair.num_failures))
    assert failures <= set(task.fit_indices.tolist())  # every failure is trained on
    assert not failures & set(task.val_indices.tolist())  # and none is used to choose
    # no training hold-out is known: the 60 validation rows are halved, early stopping and keep rule
    assert len(task.val_indices) == 30 and len(task.keep) == 30 and len(task.fit_indices) == 20 + 240
    assert task.keep.source == "half of the validation rows"
    unused = np.setdiff1d(np.arange(len(task.repair.y)), np.concatenate([task.fit_indices, task.val_indices]))
    assert set(task.repair.train_indices[unused - 20].tolist()) == set(task.keep.indices.tolist())  # neither fit nor val
    np.testing.assert_array_equal(task.keep.x, task.repair.x[unused])
    assert sorted(task.search_train.tolist() + task.search_val.tolist()) == task.fit_indices.tolist()


def test_validation_comes_from_the_base_model_s_held_out_split(digits):
    import torch

    from archrepair.checkpoint import ModelRecord
    from archrepair.data import select_failures, stratified_split
    from archrepair._repair import make_task
    from archrepair._repair.task import base_validation_indices

    held_out = stratified_split(digits.y_train, 0.1, 5)[1]
    training = {"job": {"val_fraction": 0.1, "seed": 5}, "train_examples": len(digits.y_train) - len(held_out),
                "val_examples": len(held_out)}
    record = ModelRecord("small_cnn", {}, [0.0], [1.0], [8, 8, 1], digits.class_names, training=training)
    assert np.array_equal(base_validation_indices(record, digits), held_out)
    predictions = (digits.y_test + 1) % 10
    task = make_task(torch.nn.Identity(), record, digits, select_failures(predictions, digits.y_test, 20, 0), TaskConfig(train_examples=400, val_fraction=0.2, seed=1, thin_validation=False))
    rows = task.repair.train_indices[task.val_indices - task.repair.num_failures]
    assert len(rows) == 80 and set(rows.tolist()) <= set(held_out.tolist())
    fit_rows = task.repair.train_indices[task.fit_indices[task.fit_indices >= 20] - 20]
    assert not set(fit_rows.tolist()) & set(held_out.tolist())  # the base model's held-out rows are only validated on
    assert len(task.fit_indices) == 20 + 320


def test_a_shift_doubles_the_validation_examples_with_shifted_copies(digits):
    import torch

    from archrepair.checkpoint import ModelRecord
    from archrepair.data import select_failures
    from archrepair._repair import make_task

    from dataclasses import replace

    from archrepair.data.corruptions import corrupt

    rgb = replace(digits, x_train=np.repeat(digits.x_train, 3, axis=-1), x_test=np.repeat(digits.x_test, 3, axis=-1),
                  _fingerprint=None)
    record = ModelRecord("small_cnn", {}, [0.0] * 3, [1.0] * 3, [8, 8, 3], digits.class_names)
    split = select_failures((digits.y_test + 1) % 10, digits.y_test, 20, 0)
    plain = make_task(torch.nn.Identity(), record, rgb, split, TaskConfig(train_examples=300, seed=2, thin_validation=False))
    noise = {"name": "gaussian_noise", "severity": 3, "seed": 5}
    shifted = make_task(torch.nn.Identity(), record, rgb, split,
                        TaskConfig(train_examples=300, seed=2, thin_validation=False, corruption=noise))
    assert np.array_equal(shifted.fit_indices, plain.fit_indices)  # the training rows do not change
    assert len(shifted.val_indices) == 2 * len(plain.val_indices)
    copies = shifted.val_indices[len(plain.val_indices):]
    expected = corrupt(plain.repair.x[plain.val_indices], "gaussian_noise", 3, 5)
    assert np.array_equal(shifted.repair.x[copies], expected) and not np.array_equal(expected, plain.repair.x[plain.val_indices])
    assert np.array_equal(shifted.repair.y[copies], plain.repair.y[plain.val_indices])


class _AlwaysZero(torch.nn.Module):
    """A classifier that predicts class 0 for every image."""

    def forward(self, images):
        return torch.nn.functional.one_hot(torch.zeros(len(images), dtype=torch.long), 10).float()


def test_validation_is_thinned_of_the_base_model_s_failures_like_the_evaluation_split(digits):
    from archrepair.checkpoint import ModelRecord
    from archrepair.data import select_failures
    from archrepair._repair import make_task

    record = ModelRecord("small_cnn", {}, [0.0], [1.0], [8, 8, 1], digits.class_names)
    split = select_failures(np.zeros_like(digits.y_test), digits.y_test, 300, 0, protocol="paper")
    share = 300 / split.misclassified  # the share of the test failures that D_fail took
    plain = make_task(_AlwaysZero(), record, digits, split, TaskConfig(train_examples=600, seed=4, thin_validation=False))
    thinned = make_task(_AlwaysZero(), record, digits, split, TaskConfig(train_examples=600, seed=4))
    labels = plain.repair.y
    right, wrong = plain.val_indices[labels[plain.val_indices] == 0], plain.val_indices[labels[plain.val_indices] != 0]
    assert set(right.tolist()) <= set(thinned.val_indices.tolist())  # every example the base gets right stays
    kept_wrong = np.setdiff1d(thinned.val_indices, right)
    assert set(kept_wrong.tolist()) <= set(wrong.tolist())
    assert len(kept_wrong) == len(wrong) - round(share * len(wrong))
    assert np.array_equal(thinned.fit_indices, plain.fit_indices)  # dropped rows are not trained on
    # the thinned split's accuracy is the evaluation split's, in expectation: (right) / (right + (1 - share) wrong)
    assert len(right) / len(thinned.val_indices) > len(right) / len(plain.val_indices)


class _FavoursZero(torch.nn.Module):
    """Predicts class 0 for every image, with logit ``margin`` for it and 0 for the others."""

    def __init__(self, margin: float) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, images):
        return self.margin * torch.nn.functional.one_hot(torch.zeros(len(images), dtype=torch.long), 10).float()


@pytest.mark.parametrize("protocol", ["paper", "heldout"])
def test_equal_validation_accuracy_is_decided_by_the_lower_validation_loss(digits, protocol):
    """The old rule (the paper's, and recorded beside the keep rule): ties by the lower loss. Under
    ``heldout`` the same predictions have no discordant keep row, so the original stays."""
    from archrepair.checkpoint import ModelRecord
    from archrepair.data import select_failures
    from archrepair._repair import make_task
    from archrepair._repair.base import Candidate, keep_better

    record = ModelRecord("small_cnn", {}, [0.0], [1.0], [8, 8, 1], digits.class_names)
    split = select_failures(np.zeros_like(digits.y_test), digits.y_test, 20, 0, protocol=protocol)
    sure, unsure = _FavoursZero(1.0), _FavoursZero(0.01)  # same predictions; about 90% of labels are not 0,
    task = make_task(sure, record, digits, split, TaskConfig(train_examples=300, seed=0))  # so the unsure one has the lower loss
    result = keep_better("test", task, [Candidate(unsure)])
    assert result.val_accuracy_original == result.val_accuracy_repaired
    assert result.val_loss_repaired < result.val_loss_original and result.keep["decision_old_rule"] == "repaired"
    assert result.kept == ("repaired" if protocol == "paper" else "original")
    if protocol == "heldout":
        assert result.keep["candidate_only_right"] == result.keep["original_only_right"] == 0
        assert result.keep["p_value"] == 1.0
    task = make_task(unsure, record, digits, split, TaskConfig(train_examples=300, seed=0))
    assert keep_better("test", task, [Candidate(sure)]).kept == "original"


@pytest.mark.parametrize("weight, copies", [(0.0, 0.0), (0.5, 0.5), (2.0, 2.0), (1.5, 1.5)])
def test_training_loaders_count_each_failure_fail_weight_times_per_epoch(digits, weight, copies):
    from archrepair.checkpoint import ModelRecord
    from archrepair.data import select_failures
    from archrepair._repair import make_task

    record = ModelRecord("small_cnn", {}, [0.0], [1.0], [8, 8, 1], digits.class_names)
    split = select_failures((digits.y_test + 1) % 10, digits.y_test, 40, 0)
    task = make_task(torch.nn.Identity(), record, digits, split, TaskConfig(train_examples=200, seed=1, thin_validation=False,
                     fail_weight=weight))
    loader = task.loader(task.fit_indices, batch_size=32, shuffle=True)
    failures = task.fit_indices[task.fit_indices < 40]
    others = task.fit_indices[task.fit_indices >= 40]
    draws = []
    for epoch in range(3):
        loader.set_epoch(epoch)
        rows = loader.indices.numpy()
        assert len(loader) == (len(others) + round(copies * len(failures)) + 31) // 32  # same length every epoch
        assert np.array_equal(np.sort(rows[rows >= 40]), np.sort(others))  # every other row exactly once
        counts = np.bincount(rows[rows < 40], minlength=40)
        assert counts.sum() == round(copies * len(failures)) and counts.max() <= np.ceil(copies)
        draws.append(rows[rows < 40].copy())
    if 0 < weight % 1:
        assert not np.array_equal(np.sort(draws[0]), np.sort(draws[1]))  # a new share each epoch
    assert sum(len(labels) for _, labels in loader) == len(loader.indices)
    assert type(task.loader(task.val_indices)).__name__ == "BatchLoader"  # validation is never reweighted
