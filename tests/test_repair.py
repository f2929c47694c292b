"""The repair: deterministic, resumable, saved as a plain model that reloads exactly."""

import json
import warnings

import pytest
import torch

import archrepair
from archrepair.base_model import make_loader
from archrepair.checkpoint import load_checkpoint
from archrepair.data import select_failures
from archrepair.evaluate import predict_logits
from archrepair._repair import ArchRepair, ArchRepairConfig, TaskConfig, make_task
from archrepair._repair.pipeline import run_repair
from archrepair._search import MixedEdge, RelaxedBlock, SearchConfig
from archrepair.train import TrainConfig

FAST = ["--method", "archrepair", "--search-epochs", "2", "--warmup-epochs", "1", "--finetune-epochs", "2", "--train-examples", "300",
        "--level", "20", "--count", "15"]


def _config(**overrides):
    return ArchRepairConfig(search=SearchConfig(epochs=2, warmup_epochs=1),
                            finetune=TrainConfig(epochs=2, batch_size=64, lr=0.01, patience=None), **overrides)


def _task(checkpoint, digits):
    model, record = load_checkpoint(checkpoint)
    predictions = predict_logits(model, make_loader(digits, "test", record)).argmax(1).numpy()
    split = select_failures(predictions, digits.y_test, 15, 0)
    return make_task(model, record, digits, split, TaskConfig(train_examples=300))


def test_same_seed_same_architecture_and_accuracy(digits_checkpoint, digits):
    reports = [run_repair(ArchRepair(_config(block="block2")), _task(digits_checkpoint, digits))[1] for _ in range(2)]
    assert reports[0]["genotype"] == reports[1]["genotype"]
    assert reports[0]["eval_accuracy_after"] == reports[1]["eval_accuracy_after"]
    assert reports[0]["fail_fixed_rate"] == reports[1]["fail_fixed_rate"]


def test_repair_never_modifies_the_input_model(digits_checkpoint, digits):
    task = _task(digits_checkpoint, digits)
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    ArchRepair(_config(block="block3")).repair(task)
    assert all(torch.equal(before[k], v) for k, v in task.model.state_dict().items())


def test_saved_repair_reloads_as_a_plain_model(cli, digits_checkpoint, digits, tmp_path):
    status, out, _ = cli("repair", digits_checkpoint, "--out", tmp_path / "fixed", "--block", "block2",
                         "--original-logit", "0", "--partial-channels", "1", *FAST, "--json")
    assert status == 0
    report = json.loads(out)
    better = (report["val_accuracy_repaired"], -report["val_loss_repaired"]) > (report["val_accuracy_original"],
                                                                                -report["val_loss_original"])
    keep = report["keep"]  # the keep rule decides; the old validation rule is recorded beside it
    assert keep["decision_old_rule"] == ("repaired" if better else "original") and report["kept"] == keep["decision"]
    assert keep["rule"] == "mcnemar" and report["kept"] == ("repaired" if keep["p_value"] <= keep["level"] else "original")
    assert report["eval_examples"] + report["fail_examples"] == len(digits.y_test)
    model = archrepair.load(tmp_path / "fixed")
    assert not any(isinstance(m, (MixedEdge, RelaxedBlock)) for m in model.modules())
    assert not any("alpha" in name or "beta" in name for name, _ in model.named_parameters())
    _, record = load_checkpoint(tmp_path / "fixed")
    logits = predict_logits(model, make_loader(digits, "test", record))
    assert abs((logits.argmax(1).numpy() == digits.y_test).mean() - report["test_accuracy_after"]) < 1e-9
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated in new torch, still supported
        scripted = torch.jit.script(model)
    x = next(iter(make_loader(digits, "test", record)))[0]
    torch.testing.assert_close(scripted(x), model(x))
    assert (tmp_path / "fixed" / "report.json").exists()
    written = (tmp_path / "fixed" / "report.md").read_text()
    assert f"**Kept: the {report['kept']}" in written and (tmp_path / "fixed" / "per_class.png").stat().st_size > 0
    assert f"| test set without D_fail (the paper's figure) | {100 * report['eval_accuracy_before']:.2f}%" in written
    # the input checkpoint is untouched and cannot be the output
    status, _, err = cli("repair", digits_checkpoint, "--out", digits_checkpoint, *FAST)
    assert status == 1 and "never overwritten" in err


def test_searched_architecture_is_what_gets_saved(cli, digits_checkpoint, tmp_path):
    status, out, _ = cli("repair", digits_checkpoint, "--out", tmp_path / "fixed", "--block", "block3",
                         "--original-logit", "0", "--arch-lr", "0.1", *FAST, "--json")
    assert status == 0
    report = json.loads(out)
    record = json.loads((tmp_path / "fixed" / "model.json").read_text())
    if report["kept"] == "repaired":
        assert record["repair"]["genotype"] == report["genotype"]
        assert record["repair"]["block"] == "block3"
    else:  # the original won on the validation split: saved as it was, with no repaired block
        assert record["repair"] == {}


def test_resume_after_a_kill_matches_an_uninterrupted_run(cli, digits_checkpoint, tmp_path, monkeypatch):
    status, out, _ = cli("repair", digits_checkpoint, "--out", tmp_path / "whole", "--block", "block2", *FAST, "--json")
    assert status == 0
    whole = json.loads(out)

    from archrepair._search import optimise

    original_save = optimise._save

    def save_then_die(path, *args):
        original_save(path, *args)
        if args[-1] == 1:  # killed right after the first search epoch was checkpointed
            raise KeyboardInterrupt

    monkeypatch.setattr(optimise, "_save", save_then_die)
    status, _, err = cli("repair", digits_checkpoint, "--out", tmp_path / "killed", "--block", "block2", *FAST)
    assert status == 130 and "--resume" in err
    assert (tmp_path / "killed.work" / "search.pt").exists()
    assert (tmp_path / "killed.work" / "block_inputs.json").exists()  # the cache's key, checked on resume
    monkeypatch.setattr(optimise, "_save", original_save)
    status, _, err = cli("repair", digits_checkpoint, "--out", tmp_path / "killed", "--block", "block2", *FAST,
                         "--seed", "1", "--resume")
    assert status == 1 and "another task.seed (0 then, 1 now)" in err  # a changed setting is refused, by name
    status, _, err = cli("repair", digits_checkpoint, "--out", tmp_path / "killed", "--block", "block3", *FAST,
                         "--resume")
    assert status == 1 and "another settings.block" in err
    status, out, _ = cli("repair", digits_checkpoint, "--out", tmp_path / "killed", "--block", "block2", *FAST,
                         "--resume", "--json")
    assert status == 0
    resumed = json.loads(out)
    assert resumed["prefix_cache"] == whole["prefix_cache"] == "on"
    assert whole["run_time"]["runs"] == 1 and "notes" not in whole["details"]
    assert resumed["run_time"]["runs"] == 2 and resumed["run_time"]["before_resume_seconds"] > 0  # the killed run
    assert [n for n in resumed["details"]["notes"] if n.startswith("resumed: ")]
    for key in ("genotype", "eval_accuracy_after", "fail_fixed_rate", "kept", "val_accuracy_repaired"):
        assert resumed[key] == whole[key], key
    a, b = archrepair.load(tmp_path / "whole"), archrepair.load(tmp_path / "killed")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)
    assert not (tmp_path / "killed.work").exists()


def test_unknown_block_is_refused(cli, digits_checkpoint, tmp_path):
    status, _, err = cli("repair", digits_checkpoint, "--out", tmp_path / "x", "--block", "block9", *FAST)
    assert status == 1 and "unknown block 'block9'" in err


def test_a_rerun_without_resume_starts_afresh_and_says_so(cli, digits_checkpoint, tmp_path):
    work = tmp_path / "fixed.work"
    work.mkdir()
    (work / "search.pt").write_bytes(b"left by a failed run")
    status, _, err = cli("repair", digits_checkpoint, "--out", tmp_path / "fixed", "--block", "block2", *FAST)
    assert status == 0 and err.count("starting afresh") == 1
    assert not work.exists() and (tmp_path / "fixed" / "model.safetensors").exists()


def test_report_md_and_the_console_lead_with_the_holdout_figures(digits_task_of, tmp_path, capsys):
    """Under ``heldout`` the first rows of report.md's table and of the console summary are the
    hold-out change (with its interval) and the negative flips, equal to report.json's; the paper's
    figure follows, labelled."""
    from archrepair.budget import Budget
    from archrepair._repair import get_repairer
    from archrepair.commands import repair as repair_command

    _, report = run_repair(get_repairer("block-gradient", budget=Budget(epochs=1)), digits_task_of(40, 400),
                           tmp_path / "out")
    held = report["judged"]["returned"]["holdout"]
    table = (tmp_path / "out" / "report.md").read_text().split("| | before | after | change |\n|---|---|---|---|\n")[1]
    rows = table.split("\n\n")[0].splitlines()
    assert "test hold-out" in rows[0] and f"**{held['change_points']:+.2f} points**" in rows[0]
    assert "negative flips" in rows[1] and f"{100 * held['negative_flip_rate']:.2f}% of the hold-out" in rows[1]
    assert any("the paper's figure" in row for row in rows[2:])
    assert all("whole test set" not in row or "D_fail" in row for row in rows)  # never a bare whole-test figure
    capsys.readouterr()
    repair_command.show(json.loads((tmp_path / "out" / "report.json").read_text()))
    lines = [line for line in capsys.readouterr().out.splitlines() if "│" in line and "before" not in line]
    low, high = held["change_interval_points"]
    assert "test hold-out" in lines[0] and f"{held['change_points']:+.2f} pts [{low:+.2f}, {high:+.2f}]" in lines[0]
    assert "flips -/+" in lines[1] and f"{100 * held['negative_flip_rate']:.2f}% / " in lines[1]
    assert "returned model" in lines[0] and any("paper's figure" in line for line in lines[2:])


def test_latency_changes_are_reported_only_beyond_the_noise_of_a_changed_architecture():
    """A clock that makes the original's passes take 10 ms ± 1 and the candidate's a programmed time:
    a 10 ms slower changed block is a change; 0.2 ms is noise; an unchanged architecture has none."""
    from itertools import count

    from archrepair._repair.outcome import latency_figures

    def clock_for(after_ms: float):
        readings, now = [], 0.0
        for index in range(16):  # the warm-up is not timed; 15 repeats, before then after
            for ms in (10.0 + (-1) ** index, after_ms):
                readings += [now, now + ms / 1000]
                now += ms / 1000 + 0.001
        ticks = count()
        return lambda: readings[next(ticks)]

    model, example = torch.nn.Linear(3, 2), torch.zeros(4, 3)
    slower = latency_figures(model, model, example, changed=True, clock=clock_for(20.0))
    assert slower["latency_change_ms"] == pytest.approx(10.0, abs=1.01) and slower["latency_no_change_why"] is None
    close = latency_figures(model, model, example, changed=True, clock=clock_for(10.2))
    assert close["latency_change_ms"] is None and "within the noise" in close["latency_no_change_why"]
    same = latency_figures(model, model, example, changed=False, clock=clock_for(20.0))
    assert same["latency_change_ms"] is None and same["latency_no_change_why"] == "the architecture did not change"
    assert same["latency_noise_ms"] == pytest.approx(2.0, abs=1e-6)  # the interquartile range of 9 and 11 ms
