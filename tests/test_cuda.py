"""The GPU path (marked ``cuda``; skipped without a CUDA device; ``benchmarks/gpu_check.sh`` runs them
on a lent GPU): a repair, the block-input cache, mixed precision and one baseline, each on CUDA against
the same run on the CPU."""

import pytest
import torch

from archrepair.budget import Budget
from archrepair.checkpoint import load_checkpoint
from archrepair.train import TrainConfig
from archrepair._repair import ArchRepair, ArchRepairConfig, TaskConfig, get_repairer, make_task
from archrepair._repair.pipeline import run_repair
from archrepair._repair.methods.gradient import GradientConfig, GradientRepair
from archrepair._search import SearchConfig

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(scope="module")
def parts(digits_checkpoint, digits, digits_split):
    return digits_checkpoint, digits, digits_split(15)


def _task(parts, device: str, **config):
    checkpoint, data, split = parts
    model, record = load_checkpoint(checkpoint)
    return make_task(model.to(device), record, data, split, TaskConfig(train_examples=300, device=device, **config))


def _archrepair() -> ArchRepair:
    return ArchRepair(ArchRepairConfig(block="block2", search=SearchConfig(epochs=2, warmup_epochs=1),
                                       finetune=TrainConfig(epochs=2, batch_size=64, lr=0.01, patience=None)))


@pytest.mark.parametrize("amp", [False, True])
def test_archrepair_runs_on_cuda_and_lands_near_the_cpu(parts, amp):
    cuda = run_repair(_archrepair(), _task(parts, "cuda", amp=amp))[1]
    cpu = run_repair(_archrepair(), _task(parts, "cpu"))[1]
    assert cuda["environment"]["device"].startswith("cuda") and cuda["task"]["amp"] is amp
    assert cuda["prefix_cache"] == "on"
    for report in (cuda, cpu):
        assert 0.0 <= report["eval_accuracy_after"] <= 1.0
    # the same repair; float16 and other kernels move the result a little, not the decision's footing
    assert abs(cuda["val_accuracy_repaired"] - cpu["val_accuracy_repaired"]) <= 0.05


def test_the_block_input_cache_on_cuda_gives_the_uncached_repair(parts):
    def repair(prefix_cache: bool):
        repairer = GradientRepair(GradientConfig("block", TrainConfig(epochs=2, batch_size=64, lr=0.02, patience=None)))
        return repairer.repair(_task(parts, "cuda", prefix_cache=prefix_cache))

    cached, full = repair(True), repair(False)
    assert cached.details["prefix_cache"] == "on"
    for (name, a), b in zip(cached.candidate.state_dict().items(), full.candidate.state_dict().values(), strict=True):
        assert a.device.type == "cuda"
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=name)


def test_a_baseline_runs_on_cuda(parts):
    report = run_repair(get_repairer("apricot", budget=Budget(epochs=2)), _task(parts, "cuda"))[1]
    assert report["environment"]["device"].startswith("cuda") and report["kept"] in ("repaired", "original")
