"""The keep rule: the candidate replaces the original only with a gain at level α on rows no
training, early stopping or choice between candidates has seen."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archrepair._repair import TaskConfig
from archrepair._repair.keep import KEEP_LEVEL, holm, keep_choice, keep_decision, mcnemar_gain
from archrepair.errors import ArchRepairError


def _predictions(both: int, gained: int, lost: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """``(original_right, candidate_right)`` with those counts of rows (in a shuffled order)."""
    original = np.array([1] * both + [0] * gained + [1] * lost + [0] * neither, bool)
    candidate = np.array([1] * both + [1] * gained + [0] * lost + [0] * neither, bool)
    order = np.random.default_rng(0).permutation(len(original))
    return original[order], candidate[order]


def test_a_candidate_one_example_ahead_is_refused_and_one_clearly_ahead_is_kept():
    original, candidate = _predictions(900, 31, 30, 39)  # one row ahead: the old rule would keep it
    one_ahead = keep_decision(original, candidate, KEEP_LEVEL, "repaired", "test rows")
    assert (one_ahead["candidate_only_right"], one_ahead["original_only_right"]) == (31, 30)
    assert one_ahead["decision"] == "original" and one_ahead["decision_old_rule"] == "repaired"
    assert 0.4 < one_ahead["p_value"] < 0.6
    original, candidate = _predictions(900, 60, 25, 15)
    ahead = keep_decision(original, candidate, KEEP_LEVEL, "original", "test rows")
    assert ahead["decision"] == "repaired" and ahead["p_value"] < 1e-3 and ahead["rows"] == 1000
    assert ahead["decision_old_rule"] == "original"  # recorded as given, whatever the new rule says


def test_the_p_value_is_the_exact_one_sided_binomial_tail():
    # 6 rows only the candidate gets right, 1 only the original: P(X >= 6 | n = 7, 1/2) = 8/128
    gained, lost, p = mcnemar_gain(*_predictions(10, 6, 1, 3))
    assert (gained, lost) == (6, 1) and p == pytest.approx(8 / 128)
    assert mcnemar_gain(*_predictions(10, 0, 0, 5))[2] == 1.0  # no discordant row: no evidence


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 50), st.integers(0, 50), st.integers(0, 50), st.floats(0.001, 0.499))
def test_a_candidate_that_is_not_ahead_is_never_kept(gained, lost, same, level):
    original, candidate = _predictions(same, gained, lost, same)
    decision = keep_decision(original, candidate, level, "repaired")
    if gained <= lost:
        assert decision["decision"] == "original"
    tighter = keep_decision(original, candidate, level / 2, "repaired")
    assert decision["decision"] == "repaired" or tighter["decision"] == "original"  # a lower level keeps less


def test_without_keep_rows_the_old_rule_decides():
    decision = keep_decision(None, None, KEEP_LEVEL, "repaired")
    assert decision["rule"] == "validation" and decision["decision"] == "repaired" and decision["p_value"] is None


def test_the_keep_level_is_checked():
    for level in (0.0, -0.1, 1.5):
        with pytest.raises(ArchRepairError, match="keep level"):
            TaskConfig(keep_level=level)


def test_keep_rows_are_the_base_model_s_spare_hold_out_disjoint_from_fit_and_validation(digits_task_of, digits):
    from archrepair._repair.task import base_validation_indices

    task = digits_task_of(40, 400)
    keep, repair = task.keep, task.repair
    pool = base_validation_indices(task.record, digits)
    assert keep.source == "the base model's training hold-out" and len(keep) >= 20
    assert set(keep.indices) <= set(pool)  # never trained on by the base model
    assert not set(keep.indices) & set(repair.train_indices)  # neither fit nor validation rows of D_repair
    val_examples = repair.train_indices[task.val_indices - repair.num_failures]
    fit_examples = repair.train_indices[task.fit_others - repair.num_failures]
    assert set(val_examples) <= set(pool) and not set(fit_examples) & set(pool)
    assert set(keep.indices) | set(val_examples) == set(pool)  # the pool's rest, and nothing more
    np.testing.assert_array_equal(keep.x, digits.x_train[keep.indices])
    np.testing.assert_array_equal(keep.y, digits.y_train[keep.indices])


def test_under_a_corruption_the_keep_rows_are_used_clean_and_shifted(digits_checkpoint, digits, digits_split):
    from dataclasses import replace

    import torch

    from archrepair.checkpoint import load_checkpoint
    from archrepair.data.corruptions import corrupt
    from archrepair._repair import make_task

    _, record = load_checkpoint(digits_checkpoint)  # its record names the training hold-out
    rgb = replace(digits, x_train=np.repeat(digits.x_train, 3, axis=-1), x_test=np.repeat(digits.x_test, 3, axis=-1),
                  _fingerprint=None)  # the corruptions take RGB images
    shift = {"name": "gaussian_noise", "severity": 3, "seed": 0}
    task = make_task(torch.nn.Identity(), record, rgb, digits_split(40), TaskConfig(train_examples=400, corruption=shift))
    keep, clean = task.keep, len(task.keep.indices)
    assert keep.shifted and keep.source == "the base model's training hold-out" and len(keep) == 2 * clean
    np.testing.assert_array_equal(keep.x[:clean], rgb.x_train[keep.indices])
    np.testing.assert_array_equal(keep.x[clean:], corrupt(rgb.x_train[keep.indices], "gaussian_noise", 3, 0))
    np.testing.assert_array_equal(keep.y, np.concatenate([rgb.y_train[keep.indices]] * 2))


def test_the_paper_protocol_has_no_keep_rows_and_keeps_the_validation_rule(digits_task_of):
    task = digits_task_of(40, 400, protocol="paper")
    assert task.keep is None


def test_holm_returns_the_second_option_when_the_best_validated_one_fails_and_the_second_passes():
    original = np.array([True] * 900 + [False] * 100)

    def changed(gained: int, lost: int) -> np.ndarray:
        right = original.copy()
        right[900:900 + gained], right[:lost] = True, False
        return right

    weak, strong = changed(31, 30), changed(60, 25)
    choice = keep_choice(original, [weak, strong], ["weak", "strong"], 0.05, "repaired", "rows")
    assert choice["decision"] == "repaired" and choice["chosen"] == "strong"
    first, second = choice["tests"]
    assert (first["option"], first["passed"], first["chosen"]) == ("weak", False, False)
    assert (second["option"], second["passed"], second["chosen"]) == ("strong", True, True)
    assert second["threshold"] == pytest.approx(0.025) and first["threshold"] == pytest.approx(0.05)  # 0.05/2, 0.05/1
    assert choice["p_value"] == second["p_value"] and choice["candidate_only_right"] == 60  # the returned option's
    both = keep_choice(original, [strong, strong], ["a", "b"], 0.05, "repaired")
    assert both["chosen"] == "a"  # of those that pass, the best validated (the first given)
    none = keep_choice(original, [weak, weak], ["a", "b"], 0.05, "repaired")
    assert none["decision"] == "original" and none["chosen"] is None and none["p_value"] == none["tests"][0]["p_value"]


def test_holm_keeps_the_family_wise_level_over_many_null_options():
    """Eight options no better than the original (each row's answers drawn alike for both): Holm keeps
    any of them in at most α of the families, where testing each at α alone keeps one far more often."""
    rng = np.random.default_rng(0)
    families, size, level = 600, 8, 0.05
    any_holm = any_alone = 0
    for _ in range(families):
        original = rng.random(300) < 0.8
        options = [rng.random(300) < 0.8 for _ in range(size)]
        choice = keep_choice(original, options, [str(i) for i in range(size)], level, "repaired")
        any_holm += choice["decision"] == "repaired"
        any_alone += any(test["p_value"] <= level for test in choice["tests"])
    assert any_holm / families <= level
    assert any_alone / families > 2 * level  # the family needs the correction


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=10), st.floats(0.001, 0.5))
def test_holm_passes_a_step_down_prefix_between_bonferroni_and_no_correction(p_values, level):
    verdicts = holm(p_values, level)
    passed = [p for p, (ok, _) in zip(p_values, verdicts) if ok]
    failed = [p for p, (ok, _) in zip(p_values, verdicts) if not ok]
    assert not passed or not failed or max(passed) <= min(failed)  # smaller p-values pass first
    assert all(p <= level for p in passed)  # never more than without a correction
    assert all(ok for p, (ok, _) in zip(p_values, verdicts) if p <= level / len(p_values))  # at least Bonferroni's
    assert all(p <= threshold for p, (ok, threshold) in zip(p_values, verdicts) if ok)
    if len(p_values) == 1:
        assert verdicts[0] == (p_values[0] <= level, level)
