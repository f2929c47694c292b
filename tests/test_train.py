"""The training loop: it learns, it stops at a target, and a killed run resumes to the same result."""

import pytest
import torch

from archrepair import ArchRepairError
from archrepair.base_model import TrainJob, train_base_model
from archrepair.checkpoint import load_checkpoint
from archrepair.train import TrainConfig, learning_rate


def test_schedules():
    config = TrainConfig(lr=0.1, schedule="cosine")
    assert learning_rate(config, 0, 100) == pytest.approx(0.1)
    assert learning_rate(config, 100, 100) == pytest.approx(0.0, abs=1e-12)
    cycle = TrainConfig(lr=0.1, schedule="onecycle")
    assert learning_rate(cycle, 0, 100) == pytest.approx(0.004)
    assert learning_rate(cycle, 30, 100) == pytest.approx(0.1)
    assert learning_rate(TrainConfig(lr=0.1, schedule="constant"), 77, 100) == 0.1
    # a time window further on than the steps sets the schedule; steps further on than the time, the steps
    assert learning_rate(config, 10, 100, time_progress=0.5) == pytest.approx(0.05)
    assert learning_rate(config, 50, 100, time_progress=0.1) == pytest.approx(0.05)
    assert learning_rate(config, 0, 100, time_progress=1.0) == pytest.approx(0.0, abs=1e-12)


def test_a_deadline_with_an_annealing_window_moves_the_schedule_on_time():
    from archrepair.budget import Deadline

    now = [0.0]
    outer = Deadline.after(100.0, lambda: now[0])
    window = outer.sooner(20.0, anneal=True)
    assert (window.at, window.anneal_seconds, window.time_progress()) == (20.0, 20.0, 0.0)
    now[0] = 15.0
    assert window.time_progress() == pytest.approx(0.75)
    assert window.sooner(2.0).anneal_seconds == 20.0  # a sooner deadline keeps the window it ends
    assert outer.sooner(20.0).time_progress() == 0.0  # no window: schedules follow their steps
    now[0] = 40.0
    assert window.time_progress() == 1.0 and Deadline().sooner(None, anneal=True).time_progress() == 0.0


def test_fit_anneals_over_a_deadline_s_window(digits):
    """Half the window spent before the first step (a clock standing still there): every step's rate
    is at most half the peak, where the same schedule by steps alone starts at the peak."""
    from archrepair.budget import Deadline
    from archrepair.data.loader import BatchLoader
    from archrepair.models import get_model
    from archrepair.train import fit

    mean, std = digits.channel_stats()
    loader = BatchLoader(digits.x_train[:128], digits.y_train[:128], mean, std, batch_size=32)
    config = TrainConfig(epochs=2, lr=0.1, patience=None)
    rates = {}
    for name, deadline in (("steps", Deadline.after(1000.0, lambda: 0.0)),
                           ("window", Deadline(10.0, lambda: 5.0, anneal_seconds=10.0))):
        seen = []
        torch.manual_seed(0)
        model = get_model("small_cnn", num_classes=10, in_channels=1, width=0.5)
        fit(model, loader, config, deadline=deadline, on_epoch=lambda record: seen.append(record.lr))
        rates[name] = seen
    assert rates["steps"][0] > 0.05 and all(rate <= 0.05 + 1e-9 for rate in rates["window"])
    with pytest.raises(ArchRepairError, match="unknown schedule"):
        TrainConfig(schedule="step")


def test_training_learns_the_digits(digits_checkpoint):
    _, record = load_checkpoint(digits_checkpoint)
    assert record.metrics["test_accuracy"] > 0.8  # chance is 0.1


def test_stops_at_target_accuracy(digits, tmp_path):
    config = TrainConfig(epochs=10, lr=0.05, schedule="constant", target_accuracy=0.5)
    _, record, result = train_base_model(digits, TrainJob("small_cnn", 0.5), config, tmp_path / "m", torch.device("cpu"))
    assert result.stop_reason == "target" and result.epochs_run < 10
    assert result.history[-1].target_accuracy >= 0.5
    assert all(r.target_accuracy < 0.5 for r in result.history[:-1])
    assert record.metrics["test_accuracy"] == pytest.approx(result.history[-1].target_accuracy)


def test_resume_after_a_kill_gives_the_same_model(digits, tmp_path):
    config = TrainConfig(epochs=4, lr=0.05)
    job = TrainJob("small_cnn", 0.5, seed=1)
    device = torch.device("cpu")
    train_base_model(digits, job, config, tmp_path / "whole", device)

    def kill_after_second(record):
        if record.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_base_model(digits, job, config, tmp_path / "killed", device, on_epoch=kill_after_second)
    assert (tmp_path / "killed.state.pt").exists() and not (tmp_path / "killed").exists()
    with pytest.raises(ArchRepairError, match=r"another job.seed \(1 then, 2 now\)"):
        train_base_model(digits, TrainJob("small_cnn", 0.5, seed=2), config, tmp_path / "killed", device, resume=True)
    with pytest.raises(ArchRepairError, match=r"another config.lr \(0.05 then, 0.1 now\)"):
        train_base_model(digits, job, TrainConfig(epochs=4, lr=0.1), tmp_path / "killed", device, resume=True)
    _, _, result = train_base_model(digits, job, config, tmp_path / "killed", device, resume=True)
    assert [r.epoch for r in result.history] == [0, 1, 2, 3]
    whole, _ = load_checkpoint(tmp_path / "whole")
    resumed, _ = load_checkpoint(tmp_path / "killed")
    for (key, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)
    assert not (tmp_path / "killed.state.pt").exists()


def test_resume_within_an_epoch_continues_from_the_last_batch_checkpoint(digits, tmp_path, monkeypatch):
    config = TrainConfig(epochs=2, lr=0.05, batch_size=32)  # about 50 batches an epoch
    job = TrainJob("small_cnn", 0.5, seed=3, augment="crop")
    device = torch.device("cpu")
    _, _, whole = train_base_model(digits, job, config, tmp_path / "whole", device)

    def killed_at_batch_23_of_epoch_2(config_, step, total, time_progress=0.0):
        if step == total // 2 + 22:  # steps count from 0 over both epochs
            raise KeyboardInterrupt
        return learning_rate(config_, step, total, time_progress)

    monkeypatch.setattr("archrepair.train.learning_rate", killed_at_batch_23_of_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_base_model(digits, job, config, tmp_path / "killed", device, checkpoint_every=5)
    monkeypatch.undo()
    state = torch.load(tmp_path / "killed.state.pt", weights_only=True)
    assert (state["position"]["epoch"], state["position"]["batch"]) == (1, 20)  # the checkpoint after batch 20
    assert [r["epoch"] for r in state["history"]] == [0]
    _, _, resumed = train_base_model(digits, job, config, tmp_path / "killed", device, resume=True)
    assert [r.train_loss for r in resumed.history] == [r.train_loss for r in whole.history]
    assert [r.train_accuracy for r in resumed.history] == [r.train_accuracy for r in whole.history]
    first, _ = load_checkpoint(tmp_path / "whole")
    second, _ = load_checkpoint(tmp_path / "killed")
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)


def test_image_too_small_for_the_model_is_explained(digits, tmp_path):
    with pytest.raises(ArchRepairError, match="cannot take 8x8 images"):
        train_base_model(digits, TrainJob("vgg16", 0.125), TrainConfig(epochs=1), tmp_path / "m", torch.device("cpu"))


def test_a_run_without_resume_replaces_a_stale_state_and_says_so(digits, tmp_path):
    (tmp_path / "m.state.pt").write_bytes(b"left by an interrupted run")
    said = []
    train_base_model(digits, TrainJob("small_cnn", 0.5), TrainConfig(epochs=1), tmp_path / "m", torch.device("cpu"),
                     say=said.append)
    assert len(said) == 1 and "starting afresh" in said[0] and not (tmp_path / "m.state.pt").exists()
