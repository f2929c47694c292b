"""Nothing lost and nothing silently wrong: searched blocks that save, reload and script; repairs
at odd feature-map sizes; mixed precision that really runs; reproducible demos; workers that stop
with their parent; resumes that refuse changed settings; comparisons that survive a failed method."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import archrepair
from archrepair.base_model import make_loader
from archrepair.checkpoint import ModelRecord, load_checkpoint, model_fingerprint, save_checkpoint
from archrepair.cli import main
from archrepair.models import get_block, get_model, replace_block
from archrepair._repair import ArchRepair, ArchRepairConfig, RepairResult, TaskConfig, make_task
from archrepair._repair.pipeline import save_repaired
from archrepair._search.surgery import block_input
from archrepair._search import DiscreteBlock, RelaxedBlock, SearchConfig, SearchSpace, block_graph, discretise
from archrepair.train import TrainConfig

REPO = Path(__file__).resolve().parent.parent


def _favour(relaxed: RelaxedBlock, operation: str) -> None:
    """Architecture weights that choose ``operation`` on every edge that offers it."""
    with torch.no_grad():
        for (i, j), alpha in zip(relaxed.pairs, relaxed.alphas):
            names = relaxed.edges[f"{i}_{j}"].names
            alpha.zero_()
            alpha[names.index(operation)] = 10.0


def test_a_searched_block_with_new_operations_is_kept_saved_reloaded_and_scripted(digits_checkpoint, digits, tmp_path,
                                                                                  monkeypatch):
    from archrepair._repair import pipeline

    monkeypatch.setattr(pipeline, "write_report_markdown", lambda report, folder: [])  # the report here is partial
    model, record = load_checkpoint(digits_checkpoint)
    x = next(iter(make_loader(digits, "test", record, batch_size=64)))[0]
    graph = block_graph(get_block(model, "block2"), block_input(model, "block2", x))
    relaxed = RelaxedBlock(graph, SearchSpace(partial_channels=1))
    _favour(relaxed, "sep_conv_3x3")
    genotype = discretise(relaxed)
    assert {edge["op"] for edge in genotype.edges} == {"sep_conv_3x3"} and not genotype.is_original(graph.edges)
    repaired = copy.deepcopy(model)
    replace_block(repaired, "block2", DiscreteBlock(genotype, graph.edges, relaxed))
    result = RepairResult("archrepair", repaired.eval(), "repaired", 0.5, 0.6, block="block2",
                          genotype=genotype.to_json())
    save_repaired(result, record, {"test_accuracy_after": 0.0, "eval_accuracy_after": 0.0,
                                   "base_fingerprint": model_fingerprint(digits_checkpoint), "seed": 0}, tmp_path / "r")
    reloaded = archrepair.load(tmp_path / "r")
    torch.testing.assert_close(reloaded(x), repaired(x), rtol=0, atol=0)
    assert sum(isinstance(m, torch.nn.Conv2d) and m.groups > 1 for m in reloaded.modules()) >= 2  # depthwise convs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated in new torch, still supported
        scripted = torch.jit.script(reloaded)
    torch.testing.assert_close(scripted(x), reloaded(x))


@pytest.fixture(scope="module")
def gray28(tmp_path_factory, digits):
    """A ResNet-18 (width 0.125) checkpoint for 28x28 grayscale images and such data: the digits
    scaled up, so every stage meets an odd size (28 -> 14 -> 7 -> 4)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("gray28")

    def scale(images):
        return np.stack([np.asarray(Image.fromarray(im[..., 0]).resize((28, 28)))[..., None] for im in images])

    np.savez(root / "d.npz", x_train=scale(digits.x_train[:120]), y_train=digits.y_train[:120],
             x_test=scale(digits.x_test[:80]), y_test=digits.y_test[:80])
    torch.manual_seed(0)
    arguments = {"num_classes": 10, "in_channels": 1, "width": 0.125}
    record = ModelRecord("resnet18", arguments, [0.3], [0.4], [28, 28, 1], digits.class_names,
                         data={"spec": f"npz:{root / 'd.npz'}"})
    save_checkpoint(get_model("resnet18", **arguments).eval(), record, root / "model")
    return root


@pytest.mark.parametrize("block", ["layer1", "layer2", "layer3", "layer4"])
def test_repair_at_28_pixels_works_for_every_block(gray28, tmp_path, block, capsys):
    status = main(["repair", str(gray28 / "model"), "--method", "archrepair", "--block", block, "--count", "10", "--train-examples", "40",
                   "--search-epochs", "1", "--warmup-epochs", "0", "--finetune-epochs", "1", "--search-batch-size", "16",
                   "--partial-channels", "1", "--out", str(tmp_path / "r"), "--json"])
    assert status == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    assert report["block"] == block and report["genotype"]["shapes"][-1][1] == {"layer1": 28, "layer2": 14,
                                                                                 "layer3": 7, "layer4": 4}[block]
    archrepair.load(tmp_path / "r")


def test_every_method_runs_at_28_pixels(gray28, tmp_path, capsys):
    from archrepair._repair import list_repairers

    status = main(["compare", str(gray28 / "model"), "--methods", ",".join(list_repairers()), "--seeds", "1",
                   "--budget-epochs", "2", "--count", "10", "--train-examples", "40", "--level", "10",
                   "--search-batch-size", "16", "--out", str(tmp_path / "c"), "--json"])
    assert status == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    assert result["errors"] == [] and [e["method"] for e in result["summary"]] == list_repairers()


def test_amp_on_cpu_runs_the_search_and_fine_tuning_in_bfloat16(digits_checkpoint, digits, digits_split):
    model, record = load_checkpoint(digits_checkpoint)
    split = digits_split(15)
    config = ArchRepairConfig(block="block2", search=SearchConfig(epochs=2, warmup_epochs=1),
                              finetune=TrainConfig(epochs=1, batch_size=64, lr=0.01, patience=None))
    runs = {}
    for amp in (False, True):
        task = make_task(model, record, digits, split, TaskConfig(train_examples=300, amp=amp))
        runs[amp] = ArchRepair(config).repair(task)
    losses = {amp: [e["train_loss"] for e in r.details["search"]] + [e["train_loss"] for e in r.details["finetune"]]
              for amp, r in runs.items()}
    assert all(np.isfinite(losses[True])) and losses[True] != losses[False]
    assert abs(losses[True][0] - losses[False][0]) < 0.1  # bfloat16 rounds, it does not change the task


def _without_times(value):
    """A report without the wall-clock figures, which differ between any two runs."""
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items()
                if not (k == "seconds" or k.endswith("_seconds") or (k.startswith("latency") and k != "latency_batch"))}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def test_the_demo_twice_with_the_same_thread_count_writes_the_same_report(tmp_path, capsys):
    """The default demo (a field set: the digits through a new camera) keeps a repaired model whose
    hold-out gain has a 95% interval above 0, and says so in its last line."""
    reports = []
    for _ in range(2):  # the second run rewrites the first one's folder (it holds only the demo's output)
        assert main(["demo", "--out", str(tmp_path / "a"), "--json"]) == 0, capsys.readouterr().err
        reports.append(json.loads((tmp_path / "a" / "repaired" / "report.json").read_text()))
    capsys.readouterr()
    assert reports[0]["environment"]["torch_threads"] == torch.get_num_threads()
    assert _without_times(reports[0]) == _without_times(reports[1])
    held = reports[0]["judged"]["returned"]["holdout"]
    assert reports[0]["field"] and reports[0]["kept"] == "repaired" and held["change_interval_points"][0] > 0
    from archrepair.commands.demo import closing_line

    line = closing_line(reports[0])
    assert line.startswith("Repaired the field set") and f"{held['change_points']:+.2f} points" in line
    assert "home test set" in line
    (tmp_path / "a" / "notes.txt").write_text("the user's")
    status = main(["demo", "--out", str(tmp_path / "a")])
    assert status == 1 and "--overwrite" in capsys.readouterr().err  # a folder with other files is not the demo's


def test_the_demo_camera_moves_each_digit_and_adds_seeded_noise():
    from archrepair.commands.demo import CAMERA_NOISE, CAMERA_SHIFT, camera_field

    grey = np.full((200, 8, 8, 1), 128, np.uint8)
    grey[:, 2, 3] = 255
    seen = camera_field(grey, seed=0)
    assert seen.dtype == np.uint8 and seen.shape == grey.shape
    assert np.array_equal(seen, camera_field(grey, seed=0)) and not np.array_equal(seen, camera_field(grey, seed=1))
    inner = seen[:, CAMERA_SHIFT:, CAMERA_SHIFT:].astype(float).reshape(200, -1)  # 7 x 7 pixels the image moved to
    grey_part = np.delete(inner, (2 + CAMERA_SHIFT - 1) * 7 + 3 + CAMERA_SHIFT - 1, axis=1)
    assert abs(grey_part.mean() - 128) < 1 and abs(grey_part.std() - CAMERA_NOISE) < 1
    assert seen[:, 2 + CAMERA_SHIFT, 3 + CAMERA_SHIFT].mean() > 200  # the bright pixel moved with the digit
    assert seen[:, 0, :].mean() < 40  # the edge it left is empty (zero fill) but for the noise


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("signum,group", [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGINT, True)])
def test_corrupt_leaves_no_worker_behind(tmp_path, signum, group):
    """Stopped by a signal to the command, or by Ctrl-C at a terminal (SIGINT to the whole process
    group, workers included): no worker left, exit 130, one line and no traceback. The work (75
    corrupted copies of 20,000 images) lasts minutes on any machine, far beyond the second the test
    waits, so the signal always finds the command running."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "rgb.npz", x_train=rng.integers(0, 256, (4, 32, 32, 3), np.uint8), y_train=np.array([0, 1, 0, 1]),
             x_test=rng.integers(0, 256, (20000, 32, 32, 3), np.uint8), y_test=rng.integers(0, 2, 20000))
    environment = dict(os.environ, ARCHREPAIR_CACHE_DIR=str(tmp_path / "cache"))
    # SIGINT at its default in the command, as at a terminal: a test run started in the background
    # (`cmd &` in a script) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt
    process = subprocess.Popen([sys.executable, "-m", "archrepair.cli", "corrupt", "--data", f"npz:{tmp_path / 'rgb.npz'}",
                                "--workers", "2", "--out", str(tmp_path / "c")], env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO, start_new_session=group,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    children: set[int] = set()
    while len(children) < 2 and time.monotonic() < deadline and process.poll() is None:
        children |= _children(process.pid)
        time.sleep(0.2)
    assert len(children) >= 2, "the workers never started"
    time.sleep(1.0)
    children |= _children(process.pid)
    assert process.poll() is None, "the command ended before the signal: the work is too small"
    if group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:  # never leave the command and its workers running into the rest of the suite
        for pid in children | {process.pid}:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        process.wait()
        raise
    stopped = time.monotonic()
    while any(_alive(pid) for pid in children) and time.monotonic() - stopped < 5:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in children)
    assert process.returncode == 130 and b"Traceback" not in err and b"interrupted" in err


def test_a_comparison_in_which_one_method_raises_writes_the_others(cli, digits_checkpoint, tmp_path, monkeypatch):
    from archrepair._repair.methods.gradient import GradientRepair

    original = GradientRepair.repair

    def failing(self, task):
        if self.config.level == "layer":
            raise RuntimeError("simulated failure inside the method")
        return original(self, task)

    monkeypatch.setattr(GradientRepair, "repair", failing)
    status, out, err = cli("compare", digits_checkpoint, "--methods", "layer-gradient,block-gradient", "--seeds", "1",
                           "--budget-epochs", "1", "--count", "10", "--train-examples", "200", "--out", tmp_path / "c")
    assert status == 0, err
    saved = json.loads((tmp_path / "c" / "comparison.json").read_text())
    assert [row["method"] for row in saved["rows"]] == ["block-gradient"]
    assert saved["errors"] == [{"method": "layer-gradient", "seed": 0,
                                "error": "RuntimeError: simulated failure inside the method"}]
    assert "layer-gradient on seed 0: RuntimeError" in (tmp_path / "c" / "comparison.md").read_text()


def test_compare_resume_with_changed_settings_is_refused(cli, digits_checkpoint, tmp_path):
    common = ("compare", digits_checkpoint, "--methods", "block-gradient", "--seeds", "1", "--count", "10",
              "--train-examples", "200", "--out", tmp_path / "c")
    assert cli(*common, "--budget-epochs", "1")[0] == 0
    status, _, err = cli(*common, "--budget-epochs", "2", "--resume")
    assert status == 1 and "another budget.epochs (1 then, 2 now)" in err


def test_train_resume_with_changed_settings_is_refused(cli, tmp_path, monkeypatch):
    from archrepair import train as training

    original = training._save_state

    def save_then_die(path, *args):
        original(path, *args)
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "_save_state", save_then_die)
    status, _, err = cli("train", "--epochs", "3", "--out", tmp_path / "m", "--quiet")
    assert status == 130 and "--resume" in err
    monkeypatch.setattr(training, "_save_state", original)
    status, _, err = cli("train", "--epochs", "3", "--lr", "0.05", "--out", tmp_path / "m", "--resume", "--quiet")
    assert status == 1 and "another config.lr (0.1 then, 0.05 now)" in err
    assert cli("train", "--epochs", "3", "--out", tmp_path / "m", "--resume", "--quiet")[0] == 0


def test_interrupting_a_command_without_resume_does_not_offer_it(cli, monkeypatch):
    from archrepair.commands import data_info

    def interrupted(spec):
        raise KeyboardInterrupt

    monkeypatch.setattr(data_info, "load_data", interrupted)
    status, _, err = cli("data", "digits")
    assert status == 130 and err.strip() == "archrepair data: interrupted"


@pytest.mark.parametrize("damage", [b"not a torch file", b""])
def test_a_damaged_resume_state_is_refused_in_one_line_without_unsafe_advice(cli, tmp_path, damage):
    state = tmp_path / "m.state.pt"
    state.write_bytes(damage)
    status, _, err = cli("train", "--epochs", "1", "--out", tmp_path / "m", "--resume", "--quiet")
    assert status == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "the state file" in err and "is damaged" in err and "rerun without --resume" in err
    assert "weights_only" not in err and "trust" not in err
    assert state.read_bytes() == damage and not (tmp_path / "m").exists()
