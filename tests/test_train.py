"""fernb.train, fernb.checkpoint and the train/evaluate CLI, on the synthetic faces."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch

from fernb import checkpoint
from fernb.cli import main
from fernb.data import load, read_pool
from fernb.errors import BudgetError, ConfigError, DataError, FernbError
from fernb.budget import resolve_model
from fernb.checkpoint import load_model, summary
from fernb.evaluate import load_split, metrics, predict, tta_views
from fernb.train import STATE, TrainConfig, fit, lr_at

FAST = dict(model="fernet_s", batch_size=64, lr=3e-3)


@pytest.fixture(scope="module")
def synth():
    """The synthetic set's train, val and test splits."""
    pool = read_pool("synthetic")
    return {s: load(split=s, pool=pool) for s in ("train", "val", "test")}


@pytest.fixture(scope="module")
def trained(synth, tmp_path_factory):
    """A short run on the synthetic faces, saved to a checkpoint directory."""
    out = tmp_path_factory.mktemp("run")
    summary = fit(synth["train"], synth["val"], TrainConfig(epochs=8, **FAST), out=out, progress=False)
    return out, summary


def test_fit_learns_and_keeps_the_best_val_epoch(trained):
    out, summary = trained
    hist = summary["history"]
    assert [r["epoch"] for r in hist] == list(range(1, 9))
    assert all(k in hist[0] for k in ("train_loss", "train_acc", "val_loss", "val_acc", "seconds", "images_per_s"))
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    meta = checkpoint.read_meta(out)
    best = max(hist, key=lambda r: (r["val_acc"], r["epoch"]))
    assert meta["metrics"]["epoch"] == best["epoch"] and meta["metrics"]["val_acc"] == best["val_acc"]
    assert len(meta["history"]) == 8 and meta["classes"][0] == "angry" and meta["normalize"]["std"] > 0


def test_synthetic_faces_are_learnable_but_not_trivial(trained, synth):
    model, _ = load_model(trained[0])
    acc = predict(model, synth["test"]).accuracy
    assert 0.6 < acc < 0.995, acc


def test_checkpoint_reloads_to_the_same_predictions(trained, synth):
    out, _ = trained
    a, _ = checkpoint.load(out)
    b, _ = checkpoint.load(out)
    pa, pb = predict(a, synth["test"]), predict(b, synth["test"])
    assert torch.equal(pa.probs, pb.probs) and checkpoint.read_meta(out)["model"] == "fernet_s"


def test_time_budget_ends_with_the_schedule_finished(synth, tmp_path):
    # no wall-clock assertion: only what a budget guarantees on any machine, fast or slow
    cfg = TrainConfig(minutes=0.25, **{**FAST, "model": "auto"})
    summary = fit(synth["train"], synth["val"], cfg, out=tmp_path, progress=False)
    assert summary["epochs_run"] >= 1 and summary["history"][-1]["lr"] < 0.1 * FAST["lr"]
    assert (tmp_path / checkpoint.WEIGHTS).exists()
    # 'auto' resolved for a short CPU budget, and the checkpoint names the model actually built
    assert checkpoint.read_meta(tmp_path)["model"] == "fernet_s" == checkpoint.read_meta(tmp_path)["config"]["model"]


def test_auto_model_follows_the_budget_and_the_measured_speed(monkeypatch):
    import fernb.budget
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    x, y = torch.zeros(64, 1, 48, 48), torch.zeros(64, dtype=torch.long)
    def fake_speed(per_100k_params: float):  # seconds per 64-face step, growing with the model's size
        return lambda m, *a, **k: per_100k_params * sum(p.numel() for p in m.parameters()) / 1e5

    # 40 epochs need about 10 min of fernet_s, 23 of fernet_m, 38 of fernet and 86 of fernet_l on this fake CPU
    monkeypatch.setattr(fernb.budget, "seconds_per_step", fake_speed(0.01))
    assert TrainConfig().model == "auto" and resolve_model(TrainConfig(), cpu, x, y, 28709) == "fernet_l"
    picks = [resolve_model(TrainConfig(minutes=m), cpu, x, y, 28709) for m in (2, 12, 30, 60, 120)]
    assert picks == ["fernet_s", "fernet_s", "fernet_m", "fernet", "fernet_l"]
    assert resolve_model(TrainConfig(minutes=5), cuda, x, y, 28709) == "fernet_l"  # a GPU trains the recipe's model fast
    assert resolve_model(TrainConfig(model="fernet", minutes=5), cpu, x, y, 28709) == "fernet"
    # a CPU twice as fast gets the wider model for the same budget
    monkeypatch.setattr(fernb.budget, "seconds_per_step", fake_speed(0.005))
    assert resolve_model(TrainConfig(minutes=30), cpu, x, y, 28709) == "fernet"


def test_tta_views_are_the_batch_and_its_mirror():
    x = torch.arange(2 * 48 * 48, dtype=torch.float32).reshape(2, 1, 48, 48)
    assert len(tta_views(x, False)) == 1 and torch.equal(tta_views(x, False)[0], x)
    views = tta_views(x, True)
    assert len(views) == 2 and torch.equal(views[1][..., 0], x[..., 47]) and torch.equal(views[1].flip(-1), x)


def test_half_size_checkpoint_loads_as_float32_with_the_same_predictions(trained, synth, tmp_path):
    out, _ = trained
    model, meta = checkpoint.load(out)
    checkpoint.save(tmp_path, model, meta, dtype=torch.float16)
    half, _ = checkpoint.load(tmp_path)
    assert all(p.dtype == torch.float32 for p in half.parameters())
    full_size, half_size = ((d / checkpoint.WEIGHTS).stat().st_size for d in (out, tmp_path))
    assert half_size < 0.6 * full_size
    a, b = predict(model, synth["test"]), predict(half, synth["test"])
    assert (a.probs - b.probs).abs().max() < 0.01 and (a.preds == b.preds).float().mean() > 0.99


def test_budget_too_short_is_refused(synth, capsys):
    with pytest.raises(BudgetError, match="too short"):
        fit(synth["train"], synth["val"], TrainConfig(minutes=1e-5, **FAST), progress=False)
    assert main(["train", "--data", "synthetic", "--model", "fernet_s", "--minutes", "0.00001", "--json",
                 "--out", "/tmp/fernb-never"]) == 2
    assert "too short" in capsys.readouterr().err


def test_lr_schedule_warms_up_then_decays_to_zero():
    assert lr_at(0.0, 1.0, 0.1) == 0 and lr_at(0.1, 1.0, 0.1) == pytest.approx(1.0)
    assert lr_at(0.55, 1.0, 0.1) == pytest.approx(0.5) and lr_at(1.0, 1.0, 0.1) == pytest.approx(0.0)


def test_options_a_soft_target_loss_would_drop_are_refused():
    from dataclasses import replace
    with pytest.raises(ConfigError, match="class_weights"):
        TrainConfig(class_weights=True, augment=replace(TrainConfig().augment, cutmix=1.0))


@pytest.mark.parametrize("name,value,says", [("epochs", 0, ">= 1"), ("epochs", -3, ">= 1"), ("epochs", "abc", "whole"),
                                             ("epochs", 2.5, "whole"), ("minutes", 0, "> 0"), ("minutes", -1, "> 0"),
                                             ("batch_size", 0, ">= 1"), ("lr", -1, "> 0"), ("lr", float("nan"), "> 0"),
                                             ("warmup", 1.0, "< 1"), ("precision", "fp8", "one of")])
def test_config_names_the_bad_option(name, value, says):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**{name: value})
    assert str(e.value).startswith(f"{name}=") and says in str(e.value) and "\n" not in str(e.value)


def test_kill_after_an_epoch_then_resume(tmp_path):
    cmd = [sys.executable, "-m", "fernb", "train", "--data", "synthetic", "--model", "fernet_s", "--epochs", "4",
           "--batch-size", "64", "--out", str(tmp_path), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (tmp_path / STATE).exists() and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(tmp_path / STATE, weights_only=True)["epoch"]
    assert 1 <= killed_at < 4
    run = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert [r["epoch"] for r in summary["history"]] == [1, 2, 3, 4]
    assert [r["epoch"] for r in checkpoint.read_meta(tmp_path)["history"]] == [1, 2, 3, 4]


def test_bad_checkpoints_are_refused(tmp_path, trained, capsys):
    out, _ = trained
    with pytest.raises(checkpoint.CheckpointError, match="not a fernb checkpoint"):
        checkpoint.load(tmp_path)
    torch.save({"w": torch.zeros(1)}, tmp_path / "model.pt")
    with pytest.raises(checkpoint.CheckpointError, match="never unpickles"):
        checkpoint.load(tmp_path / "model.pt")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / checkpoint.CONFIG).write_text((out / checkpoint.CONFIG).read_text())
    (broken / checkpoint.WEIGHTS).write_bytes((out / checkpoint.WEIGHTS).read_bytes()[:1000])
    with pytest.raises(checkpoint.CheckpointError, match="truncated"):
        checkpoint.load(broken)
    assert main(["evaluate", "--data", "synthetic", "--checkpoint", str(broken)]) == 2
    assert "truncated" in capsys.readouterr().err
    assert main(["train", "--data", "synthetic", "--model", "resnet-18", "--epochs", "1"]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_evaluate_cli_json_on_a_test_only_source(trained, tmp_path, capsys):
    from tests.conftest import write_folder
    write_folder(tmp_path / "fer", per_class=3, splits=("test",))
    assert main(["evaluate", "--data", str(tmp_path / "fer"), "--split", "test", "--checkpoint", str(trained[0]),
                 "--tta", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["n"] == 21 and len(m["confusion"]) == 7 and sum(map(sum, m["confusion"])) == 21 and m["tta"] == "flip"
    assert main(["evaluate", "--data", str(tmp_path / "fer"), "--checkpoint", str(trained[0]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tta"] is None
    assert {"accuracy", "macro_f1", "per_class", "confusion", "n"} <= set(m)


def test_metrics_on_known_predictions():
    from fernb.evaluate import Predictions, calibration, most_confused
    probs = torch.full((4, 7), 0.01)
    probs[[0, 1, 2, 3], [0, 0, 3, 3]] = 0.94  # true labels 0, 1, 3, 3: one 'disgust' face called 'angry'
    pred = Predictions(probs, torch.tensor([0, 1, 3, 3]), ("angry", "disgust", "fear", "happy", "neutral", "sad",
                                                          "surprise"), torch.zeros(4, 48, 48, dtype=torch.uint8))
    m = metrics(pred)
    assert m["accuracy"] == 0.75 and m["confusion"][1][0] == 1 and m["confusion"][0][0] == 1
    assert m["per_class"]["angry"]["precision"] == 0.5 and m["per_class"]["disgust"]["recall"] == 0.0
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0 + 1) / 3)  # over the classes the faces have: angry, disgust, happy
    assert sorted(m["per_class"]) == ["angry", "disgust", "happy"] and len(m["confusion"]) == 7
    assert most_confused(pred) == [("disgust", "angry", 1)]
    many = Predictions(torch.eye(7)[[0, 0, 3, 3, 3, 3, 3, 3, 3, 1]] + 0.01, torch.tensor([3, 3, 0, 3, 3, 3, 3, 3, 3, 1]),
                       pred.classes, torch.zeros(10, 48, 48, dtype=torch.uint8))
    assert most_confused(many, 1) == [("happy", "angry", 2)]  # by count: two of eight happy faces
    assert most_confused(many, 1, by="rate") == [("angry", "happy", 1.0)]  # by rate: the one angry face, all of it
    cal = calibration(pred)
    assert cal["ece"] == pytest.approx(abs(0.75 - 0.94), abs=1e-6)


def test_a_safetensors_header_whose_length_starts_with_0x80_is_not_taken_for_a_pickle(trained, tmp_path):
    out, _ = trained
    model, _ = checkpoint.load(out)
    for n in range(300):  # pad the header until its length's first byte is 0x80, as a real member's was
        raw = safetensors.torch.save(model.state_dict(), metadata={"pad": "x" * n})
        if raw[0] == 0x80:
            break
    assert raw[0] == 0x80 and raw[8:9] == b"{"
    (tmp_path / checkpoint.WEIGHTS).write_bytes(raw)
    (tmp_path / checkpoint.CONFIG).write_text(json.dumps({k: v for k, v in checkpoint.read_meta(out).items() if k != "weights_sha256"}))
    again, _ = checkpoint.load(tmp_path)  # the safetensors file it is, not "a pickled PyTorch file"
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))


def test_packaged_model_is_the_default(monkeypatch):
    from fernb.checkpoint import default_checkpoint, packaged_checkpoint
    monkeypatch.delenv("FERNB_CHECKPOINT", raising=False)
    assert packaged_checkpoint() is not None and default_checkpoint() == packaged_checkpoint()
    model, meta = load_model()
    assert meta["model"] == "fernet_l" and meta["metrics"]["val_acc"] > 0.7
    assert (packaged_checkpoint() / checkpoint.WEIGHTS).stat().st_size < 10e6  # ships inside the package


def test_packaged_model_on_real_test(real_root, monkeypatch):
    monkeypatch.delenv("FERNB_CHECKPOINT", raising=False)
    model, _ = load_model()
    acc = predict(model, load(real_root, "test"), tta=True).accuracy
    assert acc > 0.69, acc  # README reports 69.4% for the PublicTest half


def test_evaluate_val_uses_the_holdout_the_model_was_trained_with(tmp_path, capsys):
    assert main(["train", "--data", "synthetic", "--model", "fernet_s", "--epochs", "1", "--seed", "3",
                 "--val-fraction", "0.2", "--out", str(tmp_path), "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert checkpoint.read_meta(tmp_path)["holdout"] == {"val_fraction": 0.2, "seed": 3}
    assert main(["evaluate", "--data", "synthetic", "--split", "val", "--checkpoint", str(tmp_path), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["n"] == trained["n_val"]
    assert m["accuracy"] == pytest.approx(trained["history"][-1]["val_acc"], abs=0.02)  # same faces, fp32 vs bf16


def test_a_run_on_all_of_train_keeps_its_last_epoch_and_refuses_val(tmp_path, capsys):
    assert main(["train", "--data", "synthetic", "--model", "fernet_s", "--epochs", "2", "--val-fraction", "0",
                 "--out", str(tmp_path), "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    meta = checkpoint.read_meta(tmp_path)
    assert meta["n_train"] == len(load("synthetic", "trainval")) and meta["metrics"] == {"epoch": 2}
    assert "no val hold-out, last epoch (2) kept" in summary(meta) and trained["best_val_acc"] is None
    assert len(load_split(meta, "synthetic", "train")) == meta["n_train"]  # what the model trained on
    with pytest.raises(DataError, match="no val hold-out"):  # what notebooks 04 and 05 call
        load_split(meta, "synthetic", "val")
    capsys.readouterr()  # drop load()'s synthetic-data notice
    assert main(["evaluate", "--data", "synthetic", "--split", "val", "--checkpoint", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no val hold-out" in err and "--split test" in err


def test_fit_without_out_returns_the_best_val_epoch(synth):
    run = fit(synth["train"], synth["val"], TrainConfig(epochs=4, **FAST), progress=False)
    best = max(r["val_acc"] for r in run["history"])
    assert run["best_val_acc"] == best
    acc = predict(run["network"], synth["val"]).accuracy
    assert acc == pytest.approx(best, abs=0.02)  # fp32 here, training's precision there


def test_same_seed_trains_the_same_weights(synth):
    """What makes the README's reproduce command rebuild the packaged model: a run is a function of its seed."""
    def weights(seed: int) -> dict:
        cfg = TrainConfig(epochs=1, seed=seed, **FAST)
        return fit(synth["train"], synth["val"], cfg, progress=False)["network"].state_dict()
    a, b, c = weights(0), weights(0), weights(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["head.3.weight"], c["head.3.weight"])


def bench(name: str):
    """A script of benchmarks/ as a module (on the path, as when run, for the modules beside it it imports)."""
    import importlib.util
    folder = str(Path(__file__).parents[1] / "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, Path(folder) / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recipe_search_variants_change_only_what_they_name():
    search = bench("recipe_search")
    for name in search.VARIANTS:  # a misspelt field would raise here
        search.config_for(name)
    cfg = search.config_for("mixup_cutmix_drop50", minutes=5)
    assert (cfg.drop, cfg.augment.mixup, cfg.augment.cutmix, cfg.minutes) == (0.5, 0.2, 1.0, 5)
    assert cfg.augment.degrees == TrainConfig().augment.degrees and cfg.lr == TrainConfig().lr
    assert search.config_for("base") == TrainConfig()


def test_distillation_targets_blend_the_softened_teachers_with_the_label():
    soft_targets = bench("distill").soft_targets
    probs, labels = torch.tensor([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1]]), torch.tensor([0, 2])
    assert torch.equal(soft_targets(probs, labels, 2.0, 0.0), torch.eye(3)[[0, 2]])  # alpha 0: the labels alone
    assert torch.allclose(soft_targets(probs, labels, 1.0, 1.0), probs)  # T 1, alpha 1: the teachers as they are
    hot = soft_targets(probs, labels, 100.0, 1.0)
    assert torch.allclose(hot.sum(1), torch.ones(2)) and hot.max() < 0.35  # a high temperature flattens them


def test_a_distilled_student_learns_soft_targets_and_keeps_its_teachers_val(trained, tmp_path, monkeypatch, capsys):
    """The student's targets are not its labels (their key differs), yet it scores on its teachers' val split."""
    teacher = str(trained[0])
    monkeypatch.setattr(sys, "argv", ["distill.py", "--data", "synthetic", teacher, "--model", "fernet_s",
                                      "--epochs", "1", "--out", str(tmp_path)])
    bench("distill").main()
    meta, taught = checkpoint.read_meta(tmp_path), checkpoint.read_meta(teacher)
    assert meta["train_key"] == taught["train_key"] != meta["distilled"]["targets_key"]
    assert meta["distilled"]["teachers"] == [teacher] and meta["config"]["label_smoothing"] == 0.0
    assert torch.equal(load_split(meta, "synthetic", "val").images, load_split(taught, "synthetic", "val").images)
    assert "best val" in capsys.readouterr().out


def test_a_checkpoint_carves_the_val_split_it_was_trained_with(synth, tmp_path):
    """Whatever trained it (here fit itself, as notebook 03 does), load_split carves that run's val, seed 1 included."""
    pool = read_pool("synthetic")
    train, val = (load(split=s, pool=pool, seed=1) for s in ("train", "val"))
    fit(train, val, TrainConfig(epochs=1, **FAST), out=tmp_path, progress=False)
    meta = checkpoint.read_meta(tmp_path)
    assert meta["holdout"] == {"val_fraction": 0.1, "seed": 1}
    again = load_split(meta, "synthetic", "val")
    assert torch.equal(again.images, val.images) and torch.equal(again.labels, val.labels)
    assert not torch.equal(again.images, load(split="val", pool=pool, seed=0).images)  # seed 0 would differ


@pytest.mark.parametrize("capability,expected", [((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_gpu_precision_follows_native_bf16(monkeypatch, capability, expected):
    """A T4 (7.5) reports is_bf16_supported() but only emulates it: fp16 with a GradScaler there, bf16 from Ampere on."""
    from fernb import device
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert device.pick_precision(None, None, None, torch.device("cuda")) == expected


def test_cpu_without_native_bf16_gets_fp32_without_a_trial(monkeypatch):
    from fernb import device
    monkeypatch.setattr(device, "cpu_bf16", lambda: False)
    monkeypatch.setattr(device, "seconds_per_step", lambda *a, **k: pytest.fail("a timed trial ran"))
    assert device.pick_precision(None, None, None, torch.device("cpu")) == "fp32"
    assert device.pick_precision(None, None, None, torch.device("mps")) == "fp32"
    monkeypatch.setattr(device, "cpu_bf16", lambda: True)  # a native-bf16 CPU measures both and keeps the faster
    times = {"bf16": 1.0, "fp32": 2.0}
    monkeypatch.setattr(device, "seconds_per_step", lambda m, x, y, d, p, **k: times[p])
    assert device.pick_precision(None, None, None, torch.device("cpu")) == "bf16"
    times["bf16"] = 1.95
    assert device.pick_precision(None, None, None, torch.device("cpu")) == "fp32"


@pytest.mark.parametrize("isa", ["AVX2", "AVX512_CORE"])
def test_an_isa_restriction_turns_native_bf16_off(isa):
    """ONEDNN_MAX_CPU_ISA is how an AVX-512 BF16 machine measures the AVX2 and AVX-512-without-BF16 paths:
    bf16, which oneDNN then emulates, must not count as native."""
    code = "from fernb.device import cpu_bf16; print(cpu_bf16())"
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": isa, "ATEN_CPU_CAPABILITY": "avx2" if isa == "AVX2" else "avx512"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert run.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"])
def test_a_limit_below_bf16_turns_native_bf16_off_on_any_cpu(monkeypatch, name):
    """The same check on a CPU without BF16: fake one with it, then limit oneDNN below it."""
    from fernb import device
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    for var in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(var, raising=False)
    assert device.cpu_bf16()
    monkeypatch.setenv(name, "avx512_core")
    assert not device.cpu_bf16()
    monkeypatch.setenv(name, "AVX512_CORE_BF16")
    assert device.cpu_bf16()


def test_notebook_04_compares_the_packaged_model_with_the_last_run(trained, tmp_path, monkeypatch):
    from fernb.checkpoint import checkpoints, packaged_checkpoint
    monkeypatch.delenv("FERNB_CHECKPOINT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert checkpoints() == {"packaged model": packaged_checkpoint()}  # no runs/latest here yet
    import shutil
    shutil.copytree(trained[0], tmp_path / "runs" / "latest")
    found = checkpoints()  # the student's run first, the packaged model beside it as a reference
    assert list(found.values()) == [Path("runs/latest"), packaged_checkpoint()]
    assert list(found) == ["your run (runs/latest)", "packaged model"]
    assert checkpoints(trained[0]) == {f"checkpoint {trained[0]}": trained[0]}


def test_a_time_budget_trains_with_the_short_recipe(tmp_path):
    """`fernb train --minutes` uses TrainConfig.short (lighter regularisation), --epochs the long recipe."""
    from dataclasses import asdict, replace

    from fernb.augment import DEFAULT
    from fernb.cli import build_parser, train_config
    budget = train_config(build_parser().parse_args(["train", "--minutes", "5"]), tmp_path)[0]
    epochs = train_config(build_parser().parse_args(["train", "--epochs", "60"]), tmp_path)[0]
    assert epochs == TrainConfig(epochs=60) and budget == TrainConfig.short(minutes=5.0)
    assert (budget.weight_decay, budget.drop, budget.augment.erasing) == (0.01, 0.0, 0.0)
    assert (epochs.weight_decay, epochs.drop, epochs.augment) == (TrainConfig.weight_decay, None, DEFAULT)
    assert replace(budget.augment, erasing=DEFAULT.erasing) == DEFAULT  # only the regularisation differs
    assert TrainConfig.short(weight_decay=0.02).weight_decay == 0.02  # your changes win
    assert TrainConfig.from_dict(asdict(budget)) == budget  # --resume keeps the short recipe


SEEDED_RUNS = """
import json, torch
from fernb.data import load, read_pool
from fernb.train import TrainConfig, fit
pool = read_pool("synthetic")
train, val = load(split="train", pool=pool), load(split="val", pool=pool)
configs = {"long": TrainConfig(model="fernet_s", epochs=2, batch_size=64, class_weights=True, precision="fp32"),
           "short": TrainConfig.short(model="fernet_s", epochs=2, batch_size=64, precision="fp32")}
torch.set_num_threads(1)
print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(),
                  "runs": {name: fit(train, val, cfg, progress=False)["history"] for name, cfg in configs.items()}}))
"""


def test_a_seeded_history_is_the_one_fernb_trained_before_the_refactor():
    """tests/data/history_71521d9.json holds the histories that fit gave at commit 71521d9 (before the one-sitting
    refactor) for two seeded runs on the synthetic faces, one thread, fp32, AVX2 kernels of an AMD CPU; the
    refactored fit gives the same numbers there. Run on the AVX2 kernels in a fresh process (the kernels are chosen
    when torch is imported), because other kernels round differently, and two epochs of training grow that into more
    than rounding; an Intel CPU's AVX2 kernels round differently too (measured on a Xeon), so it checks on AMD only."""
    golden = json.loads((Path(__file__).parent / "data" / "history_71521d9.json").read_text())
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", SEEDED_RUNS], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    if got["capability"] != golden["capability"]:
        pytest.skip(f"this CPU has no {golden['capability']} kernels (it runs {got['capability']})")
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    vendor = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("vendor_id")),
                  "unknown")
    if vendor != golden["cpu_vendor"]:
        pytest.skip(f"the histories were recorded on an {golden['cpu_vendor']} CPU's AVX2 kernels; this {vendor} "
                    "CPU's round differently")
    for name, rows in golden["runs"].items():
        assert len(got["runs"][name]) == len(rows)
        for want, row in zip(rows, got["runs"][name]):
            assert {k: row[k] for k in want} == want, name


MIX = dict(FAST, augment=TrainConfig().augment.__class__(mixup=0.4, cutmix=1.0, erasing=0.25))


def test_a_mixup_run_is_a_function_of_its_seed(synth):
    """timm's Mixup draws from numpy's global generator; fernb seeds it from its own, so numpy's state elsewhere
    does not change the run."""
    import numpy as np
    runs = []
    for numpy_seed in (0, 1):
        np.random.seed(numpy_seed)
        runs.append(fit(synth["train"], synth["val"], TrainConfig(epochs=1, **MIX), progress=False)["history"])
    assert [r["train_loss"] for r in runs[0]] == [r["train_loss"] for r in runs[1]]
    assert [r["val_acc"] for r in runs[0]] == [r["val_acc"] for r in runs[1]]


def test_a_mixup_run_killed_after_an_epoch_resumes_to_the_uninterrupted_history(synth, tmp_path, monkeypatch):
    import fernb.train
    keys = ("train_loss", "train_acc", "val_loss", "val_acc")
    cfg = TrainConfig(epochs=3, **MIX)
    whole = fit(synth["train"], synth["val"], cfg, out=tmp_path / "whole", progress=False)
    save = fernb.train.Run.save

    def save_then_die(self, out, meta, improved):
        save(self, out, meta, improved)
        raise KeyboardInterrupt  # killed right after the first epoch was saved

    monkeypatch.setattr(fernb.train.Run, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        fit(synth["train"], synth["val"], cfg, out=tmp_path / "cut", progress=False)
    monkeypatch.setattr(fernb.train.Run, "save", save)
    assert torch.load(tmp_path / "cut" / STATE, weights_only=True)["epoch"] == 1
    resumed = fit(synth["train"], synth["val"], cfg, out=tmp_path / "cut", resume=True, progress=False)
    assert [[r[k] for k in keys] for r in resumed["history"]] == [[r[k] for k in keys] for r in whole["history"]]


def test_resume_refuses_options_that_would_change_the_run(tmp_path, capsys):
    run = ["train", "--data", "synthetic", "--model", "fernet_s", "--epochs", "1", "--batch-size", "64",
           "--out", str(tmp_path), "--json"]
    assert main(run) == 0
    capsys.readouterr()
    for extra, says in ((["--epochs", "3"], "--epochs 3 (the run has 1)"), (["--lr", "0.1"], "--lr 0.1"),
                        (["--batch-size", "32"], "--batch-size 32"), (["--val-fraction", "0.2"], "--val-fraction")):
        assert main(["train", "--data", "synthetic", "--out", str(tmp_path), "--resume", *extra]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err
    assert main(["train", "--data", "synthetic", "--out", str(tmp_path), "--resume", "--epochs", "1", "--json"]) == 0


def test_what_a_budget_buys_is_measured_before_training(synth, monkeypatch):
    import fernb.budget
    monkeypatch.setattr(fernb.budget, "seconds_per_step", lambda *a, **k: 0.5)  # a fake CPU: half a second a step
    steps = len(synth["train"]) // 64
    plan = fernb.budget.what_it_buys(TrainConfig.short(model="fernet_s", minutes=2, batch_size=64), synth["train"])
    assert plan["epoch_seconds"] == 0.5 * steps and plan["epochs"] == int(120 / (0.5 * steps * 1.1))
    plan = fernb.budget.what_it_buys(TrainConfig(model="fernet_s", epochs=7, batch_size=64), synth["train"])
    assert plan["epochs"] == 7 and plan["minutes"] == pytest.approx(7 * 0.5 * steps * 1.1 / 60)


def test_fine_tuning_starts_from_the_packaged_weights(synth, tmp_path, capsys):
    import fernb.train
    packaged, meta = checkpoint.load(checkpoint.packaged_checkpoint())  # not load_model(): $FERNB_CHECKPOINT may be set
    run = fernb.train.Run(synth["train"], TrainConfig(init="packaged", epochs=1, batch_size=64))
    assert run.cfg.model == meta["model"]
    want, got = packaged.state_dict(), run.model.state_dict()
    assert all(torch.equal(want[k], got[k]) for k in want)  # backbone and, for the same classes, the head too
    from fernb.finetune import start_from
    fresh = fernb.train.create_model(meta["model"])
    start_from(fresh, "packaged", tuple(reversed(meta["classes"])))  # other classes: a new classifier
    assert torch.equal(fresh.state_dict()["features.0.0.weight"], want["features.0.0.weight"])
    assert not torch.equal(fresh.state_dict()["head.3.weight"], want["head.3.weight"])
    with pytest.raises(ConfigError, match="leave the model out"):
        fernb.train.Run(synth["train"], TrainConfig(init="packaged", model="fernet_s"))
    assert main(["train", "--data", "synthetic", "--init", "packaged", "--epochs", "1", "--batch-size", "64",
                 "--out", str(tmp_path / "tuned"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["init"] == "packaged"
