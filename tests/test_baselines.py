"""The whole-network fine-tuning baseline behind the common interface, and the wall-clock budget."""

import pytest
import torch

from archrepair.budget import Budget
from archrepair._repair import GradientConfig, RepairResult, RepairSettings, get_repairer, list_repairers
from archrepair._search import SearchConfig
from archrepair._repair.pipeline import run_repair
from archrepair.train import TrainConfig


def test_finetune_returns_the_common_result_and_report(digits_task_of, digits):
    task = digits_task_of(10, 300)
    model = task.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = RepairSettings(train=TrainConfig(epochs=2, batch_size=64, lr=0.01))
    result, report = run_repair(get_repairer("network-gradient", settings), task)
    assert isinstance(result, RepairResult) and result.method == "network-gradient"
    assert report["eval_examples"] + report["fail_examples"] == len(digits.y_test)
    assert 0 <= report["fail_fixed_rate"] <= 1 and report["fail_accuracy_before"] == 0.0
    better = (result.val_accuracy_repaired, -result.val_loss_repaired) > (result.val_accuracy_original, -result.val_loss_original)
    assert report["keep"]["decision_old_rule"] == ("repaired" if better else "original")
    assert report["kept"] == report["keep"]["decision"]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_wall_clock_deadline_stops_training_after_the_step_that_passes_it(digits):
    from archrepair.budget import Deadline
    from archrepair.data import BatchLoader
    from archrepair.models import get_model
    from archrepair.train import fit

    model = get_model("small_cnn", num_classes=10, in_channels=1, width=0.5)
    loader = BatchLoader(digits.x_train, digits.y_train, [0.5], [0.5], batch_size=32, shuffle=True)
    result = fit(model, loader, TrainConfig(epochs=50, lr=0.05, patience=None), deadline=Deadline.after(0.0))
    assert result.stop_reason == "budget" and result.epochs_run == 1


@pytest.mark.parametrize("name", list_repairers())
def test_every_registered_method_runs_and_returns_the_common_result(name, digits_task_of, digits):
    task = digits_task_of(10, 200)
    model = task.model
    config = RepairSettings(block="block2", search=SearchConfig(epochs=1, warmup_epochs=0),
                            train=TrainConfig(epochs=1, batch_size=64, lr=0.01))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result, report = run_repair(get_repairer(name, config, Budget(epochs=2)), task)
    assert isinstance(result, RepairResult) and result.method == name
    assert report["eval_examples"] + report["fail_examples"] == len(digits.y_test)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # input untouched
    assert result.details["image_passes"] > 0  # every method states its cost in whole-image passes
    if name == "archrepair-layer":
        assert result.block.startswith("block2.") and result.block.count(".") == 1
    if name == "archrepair-fixed-arch":
        assert all(e["op"] == "original" for e in result.genotype["edges"])


def test_neuron_level_changes_one_output_channel_only(digits_task_of):
    import copy

    from archrepair._repair import GradientRepair
    from archrepair._repair.methods.gradient import failure_gradients
    from archrepair.train import fit

    task = digits_task_of(10, 200)
    model = task.model
    tuned = copy.deepcopy(model)
    repairer = GradientRepair(GradientConfig("neuron", TrainConfig(epochs=2, batch_size=64, lr=0.05, patience=None)))
    unit, parameters, set_mode, config, handles = repairer._select(tuned, failure_gradients(tuned, task))
    fit(tuned, task.loader(task.fit_indices, 64, shuffle=True), config, parameters=parameters, set_train_mode=set_mode)
    for handle in handles:
        handle.remove()
    moved = {k: v != tuned.state_dict()[k] for k, v in model.state_dict().items()
             if v.dtype.is_floating_point and not k.endswith(("running_mean", "running_var"))}
    moved = {k: m for k, m in moved.items() if m.any()}
    assert list(moved) == [unit.split("[")[0] + ".weight"]
    mask = next(iter(moved.values()))
    assert mask.flatten(1).any(1).nonzero().flatten().tolist() == [int(unit.split("[")[1][:-1])]
