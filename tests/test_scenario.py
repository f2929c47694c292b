"""The failure split: D_fail holds only misclassified examples and never overlaps the evaluation split."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archrepair import ArchRepairError
from archrepair.data import FailureSplit, select_failures


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 4), min_size=1, max_size=200),
    noise=st.integers(0, 2**31 - 1),
    count=st.integers(1, 300),
    seed=st.integers(0, 1000),
)
def test_failure_split_partitions_the_test_set(labels, noise, count, seed):
    labels = np.array(labels)
    predictions = np.where(np.random.default_rng(noise).random(len(labels)) < 0.4, (labels + 1) % 5, labels)
    if (predictions == labels).all():
        with pytest.raises(ArchRepairError, match="no failures"):
            select_failures(predictions, labels, count, seed)
        return
    split = select_failures(predictions, labels, count, seed)
    fail, keep = set(split.fail_indices), set(split.eval_indices)
    assert not fail & keep
    assert fail | keep == set(range(len(labels)))
    assert all(predictions[i] != labels[i] for i in fail)
    assert len(fail) == min(count, split.misclassified)
    assert split.fail_indices == select_failures(predictions, labels, count, seed).fail_indices


def test_split_round_trips(tmp_path):
    split = select_failures(np.array([1, 1, 0, 0]), np.array([0, 1, 1, 0]), 1, seed=2)
    split.save(tmp_path / "f.json")
    assert FailureSplit.load(tmp_path / "f.json") == split


def test_missing_split_file_is_explained(tmp_path):
    with pytest.raises(ArchRepairError, match="archrepair failures"):
        FailureSplit.load(tmp_path / "none.json")
