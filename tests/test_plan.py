"""One plan (#43): the command line, the Python API and a study row build the same
:class:`~archrepair.plan.RepairPlan` for the same repair, and running it from any door returns the
same model and the same figures; the same defaults (device, training examples) hold at every door,
and the method's settings check runs on every path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import archrepair
from archrepair._checks import check_dependent
from archrepair.budget import Budget
from archrepair.cli import build_parser
from archrepair.commands.repair import plan_of, repair_settings
from archrepair.plan import RepairPlan, prepare, run_plan
from archrepair.study import Store, load_study
from archrepair.study.execute import plan_of_row
from archrepair._repair import TaskConfig

STUDY = """
name = "one"
seeds = [3]
budget = {{ epochs = 1 }}
count = 40
train_examples = 300
threads = 1
device = "cpu"

[models.digits]
checkpoint = "{checkpoint}"

[scenarios.test]

[[grid]]
models = ["digits"]
scenarios = ["test"]
methods = ["block-gradient"]
"""

# what the three doors share: the same model, 40 failures chosen with seed 3, 300 training
# examples, one epoch, block-gradient, on the CPU
CLI = ["repair", "{checkpoint}", "--method", "block-gradient", "--count", "40", "--seed", "3",
       "--train-examples", "300", "--budget-epochs", "1", "--device", "cpu", "--out", "{out}"]


def _parsed(argv: list[str]):
    """The options of ``archrepair ARGV`` as the command line reads them (dependent options resolved)."""
    args = build_parser(argv[0]).parse_args(argv)
    check_dependent(args)
    return args


def _cli_plan(checkpoint: Path, out: Path) -> RepairPlan:
    args = _parsed([word.format(checkpoint=checkpoint, out=out) for word in CLI])
    return plan_of(args, repair_settings(args, [args.method]), out)


def _api_plan(checkpoint: Path, out: Path) -> RepairPlan:
    return archrepair.make_plan(checkpoint, method="block-gradient", count=40, out=out,
                                task=TaskConfig(train_examples=300, seed=3, device="cpu"), budget=Budget(epochs=1))


def _study_plan(checkpoint: Path, tmp_path: Path) -> RepairPlan:
    path = tmp_path / "one.toml"
    path.write_text(STUDY.format(checkpoint=checkpoint))
    (run,) = load_study(path).runs()
    return plan_of_row(run.config)


def _comparable(plan: RepairPlan) -> dict:
    record = plan.record()
    record.pop("out")
    return record


def test_the_cli_the_api_and_a_study_row_build_the_same_plan_and_the_same_repair(digits_checkpoint, tmp_path):
    plans = {"cli": _cli_plan(digits_checkpoint, tmp_path / "cli"), "api": _api_plan(digits_checkpoint, tmp_path / "api"),
             "study": _study_plan(digits_checkpoint, tmp_path)}
    assert _comparable(plans["cli"]) == _comparable(plans["api"]) == _comparable(plans["study"])
    torch.set_num_threads(1)
    returned = {}
    for door, plan in plans.items():
        result, report = run_plan(prepare(plan), estimate=False)
        returned[door] = (result.model.state_dict(), report)
    weights = {door: state for door, (state, _) in returned.items()}
    for name, tensor in weights["cli"].items():
        assert torch.equal(tensor, weights["api"][name]) and torch.equal(tensor, weights["study"][name]), name
    figures = {door: _figures(json.loads(json.dumps(report, default=str))) for door, (_, report) in returned.items()}
    assert figures["cli"] == figures["api"] == figures["study"]


def _figures(report):
    """A report without what differs between runs of the same repair, at any depth: times,
    latencies, the environment and where it was written."""
    varying = ("seconds", "latency", "environment", "out", "plan", "run_time")
    if isinstance(report, dict):
        return {key: _figures(value) for key, value in report.items() if not any(word in key for word in varying)}
    if isinstance(report, list):
        return [_figures(value) for value in report]
    return report


def test_every_door_runs_on_the_gpu_when_there_is_one(digits_checkpoint, tmp_path, monkeypatch):
    from archrepair.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cli = _parsed(["repair", str(digits_checkpoint), "--out", str(tmp_path / "o")])
    api = archrepair.make_plan(digits_checkpoint)
    study = tmp_path / "any.toml"
    study.write_text(STUDY.format(checkpoint=digits_checkpoint).replace('device = "cpu"\n', ""))
    (row,) = load_study(study).runs()
    demo = _parsed(["demo"])
    assert [plan_of(cli, repair_settings(cli, [cli.method])).task.device, api.task.device] == ["auto", "auto"]
    assert resolve_device(api.task.device).type == "cuda" and row.config["task"]["device"] == "cuda"
    assert demo.device == "auto" and TaskConfig().device == "auto"
    assert archrepair.load_problem.__kwdefaults__["device"] == "auto"
    assert archrepair.localize.__kwdefaults__["device"] == "auto"


def test_zero_and_none_training_examples_mean_all_of_them_at_every_door(digits_checkpoint, digits_split, tmp_path):
    assert TaskConfig(train_examples=0).train_examples is None and TaskConfig(train_examples=None).train_examples is None
    cli = _parsed(["repair", str(digits_checkpoint), "--train-examples", "0", "--out", "o"])
    assert plan_of(cli, repair_settings(cli, [cli.method])).task.train_examples is None
    assert archrepair.make_plan(digits_checkpoint, task=TaskConfig(train_examples=0)).task.train_examples is None
    study = tmp_path / "all.toml"
    study.write_text(STUDY.format(checkpoint=digits_checkpoint).replace("train_examples = 300", "train_examples = 0"))
    (row,) = load_study(study).runs()
    assert plan_of_row(row.config).task.train_examples is None
    problem = archrepair.load_problem(digits_checkpoint, device="cpu")
    split = digits_split(10)
    everything = problem.localize(split, None).extra["train_examples"]
    assert problem.localize(split, 0).extra["train_examples"] == everything == len(problem.data.y_train)


REJECTED = "layer 'block1' is a"  # arachne patches a linear layer; block1 is a block of convolutions


def test_the_methods_settings_check_runs_at_every_door(cli, digits_checkpoint, tmp_path):
    from archrepair.errors import ArchRepairError
    from archrepair.study import run_study

    def refused(*words: str) -> None:
        status, _, stderr = cli(*words)
        assert status == 1 and REJECTED in stderr and len(stderr.strip().splitlines()) == 1, stderr
        assert not (tmp_path / "out").exists()

    common = ["--count", "10", "--train-examples", "200", "--layer", "block1"]
    refused("repair", digits_checkpoint, "--method", "arachne", *common, "--out", tmp_path / "out")
    refused("repair", digits_checkpoint, "--method", "arachne", *common, "--out", tmp_path / "out", "--dry-run")
    refused("compare", digits_checkpoint, "--methods", "block-gradient,arachne", "--seeds", "1", *common,
            "--out", tmp_path / "out")
    settings = archrepair.RepairSettings(layer="block1")
    for call in (lambda: archrepair.repair(digits_checkpoint, method="arachne", count=10, settings=settings),
                 lambda: archrepair.compare(digits_checkpoint, ["block-gradient", "arachne"], count=10, seeds=1,
                                            settings=settings)):
        with pytest.raises(ArchRepairError, match=REJECTED):
            call()
    study = tmp_path / "check.toml"
    study.write_text(STUDY.format(checkpoint=digits_checkpoint).replace('methods = ["block-gradient"]', 'methods = ["patch"]')
                     + '\n[methods.patch]\nmethod = "arachne"\nsettings = { layer = "block1" }\n')
    with pytest.raises(ArchRepairError, match=REJECTED):  # its one row failed: the study says why
        run_study(load_study(study))
    (row,) = Store(tmp_path / "check.sqlite").runs()
    assert row.status == "failed" and REJECTED in row.error


def _random_images(seed: int = 0) -> dict:
    """360 random 32 x 32 RGB images with 4 labels: 240 to train on, 120 to test."""
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 256, (360, 32, 32, 3), dtype=np.uint8), rng.integers(0, 4, 360)
    return {"x_train": x[:240], "y_train": y[:240], "x_test": x[240:], "y_test": y[240:]}


def test_a_model_in_memory_repairs_like_the_same_model_imported_first(cli, tmp_path):
    from safetensors.torch import save_file
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model, data = resnet18(num_classes=4).eval(), _random_images()
    save_file(model.state_dict(), tmp_path / "weights.safetensors")
    np.savez(tmp_path / "data.npz", **data)
    status, _, stderr = cli("import", "--torchvision", "resnet18", "--arg", "num_classes=4", "--weights",
                            tmp_path / "weights.safetensors", "--data", f"npz:{tmp_path / 'data.npz'}",
                            "--out", tmp_path / "imported")
    assert status == 0, stderr
    options = dict(method="block-gradient", count=20, budget=Budget(epochs=1),
                   task=TaskConfig(train_examples=0, seed=0, device="cpu"))
    imported = archrepair.make_plan(tmp_path / "imported", data=f"npz:{tmp_path / 'data.npz'}", **options)
    before = {path.name for path in tmp_path.iterdir()}
    tensors = {key: torch.as_tensor(value) for key, value in data.items()}  # the images as ToTensor() gives them
    tensors["x_train"], tensors["x_test"] = (tensors[key].permute(0, 3, 1, 2) / 255.0 for key in ("x_train", "x_test"))
    in_memory = archrepair.make_plan(model, data=tensors, **options)
    assert {path.name for path in tmp_path.iterdir()} == before  # nothing written where the user works
    paths = ("checkpoint", "data")
    assert {k: v for k, v in imported.record().items() if k not in paths} == \
        {k: v for k, v in in_memory.record().items() if k not in paths}
    torch.set_num_threads(1)
    (first, first_report), (second, second_report) = (run_plan(prepare(plan), estimate=False)
                                                      for plan in (imported, in_memory))
    assert isinstance(second.model, type(model))
    assert first_report["data"]["fingerprint"] == second_report["data"]["fingerprint"]
    assert first_report["base_fingerprint"] == second_report["base_fingerprint"]
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name


def test_data_in_memory_in_every_form_is_the_same_images(tmp_path):
    from archrepair.in_memory import image_arrays

    data = _random_images()
    tensors = {key: torch.as_tensor(value) for key, value in data.items()}
    floats = dict(tensors, x_train=tensors["x_train"].permute(0, 3, 1, 2) / 255.0,
                  x_test=tensors["x_test"].permute(0, 3, 1, 2) / 255.0)
    datasets = (torch.utils.data.TensorDataset(floats["x_train"], tensors["y_train"]),
                torch.utils.data.TensorDataset(floats["x_test"], tensors["y_test"]))
    forms = [data, tuple(data[key] for key in ("x_train", "y_train", "x_test", "y_test")), floats, datasets]
    for form in forms:
        arrays = image_arrays(form)
        for key, value in data.items():
            assert np.array_equal(arrays[key], value), key
    with pytest.raises(archrepair.ArchRepairError, match="outside"):
        image_arrays(dict(floats, x_train=floats["x_train"] * 2))
    with pytest.raises(archrepair.ArchRepairError, match="lacks y_test"):
        image_arrays({key: value for key, value in data.items() if key != "y_test"})


def test_archrepair_compare_and_the_compare_command_write_the_same_comparison(cli, digits_checkpoint, tmp_path):
    torch.set_num_threads(1)
    status, _, stderr = cli("compare", digits_checkpoint, "--methods", "block-gradient,network-gradient", "--seeds", "1",
                            "--budget-epochs", "1", "--count", "10", "--train-examples", "200", "--device", "cpu",
                            "--out", tmp_path / "cli")
    assert status == 0, stderr
    comparison = archrepair.compare(digits_checkpoint, ["block-gradient", "network-gradient"], count=10, seeds=1,
                                    budget=Budget(epochs=1), task=TaskConfig(train_examples=200, device="cpu"))
    archrepair.write_comparison(comparison, tmp_path / "api")
    written = [json.loads((tmp_path / door / "comparison.json").read_text()) for door in ("cli", "api")]
    assert _figures(written[0]) == _figures(written[1])
    assert len(written[0]["rows"]) == 2


def test_the_typed_report_reads_the_reports_json_and_an_older_one(digits_checkpoint, tmp_path):
    from archrepair._repair.report import RepairReport

    result, report = archrepair.repair(digits_checkpoint, method="block-gradient", out=tmp_path / "r", count=10,
                                       budget=Budget(epochs=1), task=TaskConfig(train_examples=200, device="cpu"))
    written = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report.to_dict() == written and RepairReport.load(tmp_path / "r") == report
    judged = written["judged"]["returned"]["holdout"]
    assert (report.returned.holdout.change_points, report.returned.holdout.negative_flip_rate) == \
        (judged["change_points"], judged["negative_flip_rate"])
    assert report.keep.p_value == written["keep"]["p_value"] and report.keep.decision == report.kept
    assert report.cost.parameters_after == written["parameters_after"] and report.plan == written["plan"]
    older = {key: value for key, value in written.items() if key not in ("plan", "keep", "latency_batch")}
    typed = RepairReport.from_dict(older)
    assert typed.plan is None and typed.keep is None and typed.cost is None
    assert typed.returned == report.returned
    with pytest.raises(archrepair.ArchRepairError, match="not a repair report"):
        RepairReport.from_dict({"kept": "original"})


@pytest.mark.parametrize("arguments, message", [
    ({"resume": True}, "resume=True continues the repair written to out; give out"),
    ({"model_info": {"mean": [0.5]}}, "model_info describes a model given in memory"),
    ({"in_memory": True}, "a model given in memory needs its data in memory too"),
    ({"in_memory": True, "data": _random_images(), "model_info": {"colour": 1}}, "model_info takes classes, mean"),
])
def test_a_plan_the_api_cannot_make_is_refused_in_one_line_and_writes_nothing(digits_checkpoint, tmp_path,
                                                                            arguments, message):
    from torchvision.models import resnet18

    arguments = dict(arguments)
    checkpoint = resnet18(num_classes=4) if arguments.pop("in_memory", False) else digits_checkpoint
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(archrepair.ArchRepairError) as raised:
        archrepair.make_plan(checkpoint, out=tmp_path / "out" if "resume" not in arguments else None, **arguments)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert sorted(tmp_path.rglob("*")) == before
