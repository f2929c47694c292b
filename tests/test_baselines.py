"""The whole-network fine-tuning baseline behind the common interface, and the wall-clock budget."""

import torch

from archrepair.base_model import make_loader
from archrepair.checkpoint import load_checkpoint
from archrepair.data import select_failures
from archrepair.evaluate import predict_logits
from archrepair.repair import FineTune, FineTuneConfig, RepairResult, make_task
from archrepair.repair.pipeline import run_repair
from archrepair.train import TrainConfig


def test_finetune_returns_the_common_result_and_report(digits_checkpoint, digits):
    model, record = load_checkpoint(digits_checkpoint)
    predictions = predict_logits(model, make_loader(digits, "test", record)).argmax(1).numpy()
    task = make_task(model, record, digits, select_failures(predictions, digits.y_test, 10, 0), train_examples=300)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result, report = run_repair(FineTune(FineTuneConfig(TrainConfig(epochs=2, batch_size=64, lr=0.01))), task)
    assert isinstance(result, RepairResult) and result.method == "finetune"
    assert report["eval_examples"] + report["fail_examples"] == len(digits.y_test)
    assert 0 <= report["fail_fixed_rate"] <= 1 and report["kept"] in ("repaired", "original")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_wall_clock_budget_stops_training(digits, tmp_path):
    from archrepair.base_model import TrainJob, train_base_model

    config = TrainConfig(epochs=50, lr=0.05, patience=None, max_seconds=0.0)
    _, _, result = train_base_model(digits, TrainJob("small_cnn", 0.5), config, tmp_path / "m", torch.device("cpu"))
    assert result.stop_reason == "budget" and result.epochs_run == 1
