"""fit(): train a model on in-memory tensors, by epochs or by a time budget, with EMA, val-based selection and resume."""
from __future__ import annotations

import copy
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.utils import ModelEmaV3
from tqdm.auto import tqdm

from fernb import checkpoint
from fernb.augment import DEFAULT, MEAN, STD, AugmentConfig, BatchAugment, mixer, to_input
from fernb.data import FERData, FernbError
from fernb.models import count_parameters, create_model

STATE = "resume.pt"  # training state for --resume: tensors and plain values, read back with weights_only=True


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved into the checkpoint's config.json."""

    model: str = "auto"  # auto: the default recipe's model, fernet_l, or a smaller FERNet for a short CPU budget
    epochs: int = 60
    minutes: float | None = None  # a time budget: the LR schedule spans it, and training ends on time
    batch_size: int = 256
    lr: float = 4e-3
    weight_decay: float = 0.05
    warmup: float = 0.03  # fraction of the run spent warming the LR up
    label_smoothing: float = 0.1
    ema_decay: float = 0.999  # EMA of the weights, evaluated and kept; 0 turns it off
    drop: float | None = None  # dropout before the classifier; None: the model's own default (FERNet 0.2)
    class_weights: bool = False  # weight the loss by inverse class frequency (disgust is 1.5% of train)
    self_distill: float = 0.0  # PS-KD: targets blend in the model's last-epoch predictions, up to this weight at the end
    augment: AugmentConfig = field(default_factory=lambda: DEFAULT)
    pretrained: bool = False
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto | bf16 | fp16 | fp32

    def to_dict(self) -> dict:
        """Plain dict for JSON."""
        return asdict(self)


class BudgetError(FernbError, ValueError):
    """A time budget too short to train even one epoch."""


class ConfigError(FernbError, ValueError):
    """Options of a TrainConfig that cannot work together."""


def check_config(cfg: TrainConfig) -> None:
    """Refuse option pairs whose loss would silently drop one of them (soft targets carry no class weights)."""
    mixing = cfg.augment.mixup > 0 or cfg.augment.cutmix > 0
    soft = [name for name, on in (("mixup/cutmix", mixing), ("self_distill", cfg.self_distill > 0)) if on]
    if cfg.class_weights and soft:
        raise ConfigError(f"class_weights cannot be combined with {soft[0]} (its soft targets ignore class weights); "
                          "turn one of them off")
    if len(soft) == 2:
        raise ConfigError("self_distill cannot be combined with mixup/cutmix (mixed faces have no prediction of their "
                          "own to distil); turn one of them off")


RECIPE_MODEL = "fernet_l"  # the default recipe's model (README: results)
# For a CPU time budget, the widest FERNet that still gets ~40 epochs on a 2-core laptop CPU
# (fernet_s 16 s, fernet_m 40 s, fernet_l 100 s an epoch): (up to this many minutes, model)
CPU_BUDGET_MODELS = ((25, "fernet_s"), (60, "fernet_m"))


def resolve_model(cfg: TrainConfig, device: torch.device) -> str:
    """cfg.model, with 'auto' replaced by the recipe's model, or a smaller one for a short budget on a CPU."""
    if cfg.model != "auto":
        return cfg.model
    if cfg.minutes is None or device.type != "cpu":
        return RECIPE_MODEL
    return next((name for limit, name in CPU_BUDGET_MODELS if cfg.minutes <= limit), RECIPE_MODEL)


# ---------------------------------------------------------------- device and precision


def pick_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast(device: torch.device, precision: str):
    """The autocast context for a precision ('fp32' turns it off)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def seconds_per_step(model, x, y, device, precision, steps=3) -> float:
    """Seconds per training step of a throwaway copy of the model."""
    m = copy.deepcopy(model).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.0)
    for i in range(steps + 1):
        if i == 1:
            t = time.perf_counter()
        with autocast(device, precision):
            loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / steps


def pick_precision(model, x, y, device: torch.device, precision: str = "auto") -> str:
    """'auto': bf16 on CUDA that has it, else fp16; on a CPU, bf16 only where measured faster than fp32."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type != "cpu":
        return "fp32"
    # bf16 autocast wins 2x for plain convs on AVX-512-BF16 CPUs but loses for depthwise ones: measure, don't guess
    bf16, fp32 = (seconds_per_step(model, x, y, device, p) for p in ("bf16", "fp32"))
    return "bf16" if bf16 < 0.9 * fp32 else "fp32"


# ---------------------------------------------------------------- inference used by fit and evaluate


TTA = {None: 0, False: 0, True: 0, "flip": 0, "shift": 2}  # TTA mode -> pixel shift (flips in every mode but None)


def tta_views(x: torch.Tensor, tta: str | bool | None) -> list[torch.Tensor]:
    """The views of a normalised batch that TTA averages: itself; + its mirror ('flip', True); + both shifted by
    2 px up, down, left and right ('shift', 10 views: airbench-style, a cheap stand-in for ten-crop)."""
    if tta not in TTA:
        raise ValueError(f"unknown TTA mode {tta!r}; use one of flip, shift or None")
    views = [x] if not tta else [x, x.flip(-1)]
    d, (h, w) = TTA[tta], x.shape[-2:]
    if d:
        padded = F.pad(x, (d, d, d, d), mode="replicate")  # replicate: no black borders the model never saw
        for dx, dy in ((d, 0), (-d, 0), (0, d), (0, -d)):
            v = padded[..., d + dy:d + dy + h, d + dx:d + dx + w]
            views += [v, v.flip(-1)]
    return views


@torch.no_grad()
def run_model(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 512, device=None,
              precision: str = "fp32", tta: str | bool | None = None) -> torch.Tensor:
    """Logits [N, C] (float32, on the CPU) for uint8 images [N, 48, 48], averaged over the TTA views."""
    device = device or next(model.parameters()).device
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = to_input(images[i:i + batch_size].to(device), channels_last=True)
        with autocast(device, precision):
            views = tta_views(x, tta)
            logits = sum(model(v.contiguous(memory_format=torch.channels_last)).float() for v in views) / len(views)
        out.append(logits.cpu())
    return torch.cat(out) if out else torch.empty(0, 0)


# ---------------------------------------------------------------- the schedule


def lr_at(progress: float, peak: float, warmup: float) -> float:
    """One-cycle LR at progress in [0, 1]: linear warm-up to peak, then cosine down to zero."""
    if progress < warmup:
        return peak * progress / warmup
    p = min(1.0, (progress - warmup) / max(1e-8, 1 - warmup))
    return peak * 0.5 * (1 + math.cos(math.pi * p))


# ---------------------------------------------------------------- fit


def fit(train: FERData, val: FERData | None, cfg: TrainConfig = TrainConfig(), out: str | Path | None = None,
        resume: bool = False, progress: bool = True) -> dict:
    """Train cfg.model on train, pick the epoch with the best val accuracy, save it to out; returns the run summary
    (its "network" is the best-val epoch's model, EMA weights when EMA is on; out holds the same weights).

    With cfg.minutes the LR schedule spans the budget (progress = elapsed time / budget), so training ends on
    time with the schedule finished. Every epoch writes the best-so-far checkpoint and a resume state to out.
    """
    check_config(cfg)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    device = pick_device(cfg.device)
    cfg = replace(cfg, model=resolve_model(cfg, device))
    model = create_model(cfg.model, num_classes=len(train.classes), pretrained=cfg.pretrained, drop=cfg.drop)
    model = model.to(device, memory_format=torch.channels_last)
    ema = ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=True) if cfg.ema_decay > 0 else None
    from timm.optim import create_optimizer_v2  # AdamW with no weight decay on norms and biases
    opt = create_optimizer_v2(model, opt="adamw", lr=cfg.lr, weight_decay=cfg.weight_decay)
    images, labels = train.images.to(device), train.labels.to(device)
    bs = min(cfg.batch_size, len(labels))
    steps_per_epoch = len(labels) // bs
    weight = None
    if cfg.class_weights:
        counts = torch.bincount(train.labels, minlength=len(train.classes)).float().clamp(min=1)
        weight = (counts.sum() / counts / len(counts)).to(device)
    mix = mixer(cfg.augment, len(train.classes), cfg.label_smoothing)
    gen = torch.Generator().manual_seed(cfg.seed)
    augment = BatchAugment(cfg.augment, cfg.seed, device)
    # PS-KD (Kim et al. 2021): each face's softmax from the previous epoch, a free teacher against FER's label noise
    n_cls = len(train.classes)
    soft = torch.full((len(labels), n_cls), 1 / n_cls, device=device) if cfg.self_distill else None
    state = dict(epoch=0, step=0, elapsed=0.0, history=[], best_acc=-1.0, soft=soft)
    out = Path(out) if out is not None else None
    if resume and out is not None and (out / STATE).exists():
        state = _load_state(out / STATE, model, ema, opt, gen, augment.g)
        if soft is not None and state["soft"] is not None:
            soft.copy_(state["soft"])
        state["soft"] = soft
    t_start = time.perf_counter() - state["elapsed"]  # the budget counts everything from here, across resumes
    precision = pick_precision(model, to_input(images[:bs], channels_last=True), labels[:bs], device, cfg.precision)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    total_steps = cfg.epochs * steps_per_epoch
    budget = cfg.minutes * 60 if cfg.minutes else None
    meta = dict(model=cfg.model, classes=list(train.classes), in_chans=1, input_size=[48, 48],
                normalize={"mean": MEAN, "std": STD}, params=count_parameters(model), precision=precision,
                device=str(device), data=train.source, n_train=len(train), n_val=len(val) if val else 0,
                config=cfg.to_dict())
    eval_seconds = len(val) / 2000 if val is not None else 0.0  # refined after the first epoch
    best = None  # the kept (best-val) epoch's weights, returned as summary["network"]
    done = state["step"] >= total_steps if not budget else state["elapsed"] >= budget
    while not done:
        model.train()
        epoch, t_epoch, seen = state["epoch"] + 1, time.perf_counter(), 0
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        perm = torch.randperm(len(labels), generator=gen).to(device)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}", disable=not progress, leave=False)
        for i in bar:
            elapsed = time.perf_counter() - t_start
            p = min(1.0, (elapsed + eval_seconds) / budget) if budget else state["step"] / total_steps
            if p >= 1.0:
                break
            for g in opt.param_groups:
                g["lr"] = lr_at(p, cfg.lr, cfg.warmup)
            idx = perm[i * bs:(i + 1) * bs]
            x, y = augment(to_input(images[idx])).contiguous(memory_format=torch.channels_last), labels[idx]
            target = _distill_target(y, soft, idx, cfg, p) if soft is not None and state["epoch"] else None
            loss, logits = _step(model, opt, scaler, x, y, mix, weight, cfg.label_smoothing, device, precision, target)
            if soft is not None:
                soft[idx] = logits.detach().float().softmax(-1)
            if ema is not None:
                ema.update(model, step=state["step"])
            state["step"] += 1
            seen += len(y)
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(-1) == y).sum()
            if i % 20 == 0:
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}", acc=f"{correct.item() / seen:.3f}")
        if seen == 0:
            if state["epoch"] == 0:
                raise BudgetError(f"a budget of {cfg.minutes} min is too short to train one step of {cfg.model}; "
                                  "give more --minutes")
            break
        if epoch == 1 and seen < steps_per_epoch * bs:
            tqdm.write(f"fernb: the {cfg.minutes} min budget ended after {seen // bs} of {steps_per_epoch} steps of "
                       "the first epoch; the checkpoint is usable but undertrained: give more --minutes")
        train_seconds, t_eval = time.perf_counter() - t_epoch, time.perf_counter()
        row = dict(epoch=epoch, steps=seen // bs, train_loss=loss_sum.item() / seen, train_acc=correct.item() / seen,
                   images_per_s=seen / train_seconds, lr=opt.param_groups[0]["lr"])
        kept = ema.module if ema is not None else model
        if val is not None and len(val):
            row.update(_val_scores(kept, val, device, precision))
            eval_seconds = time.perf_counter() - t_eval
        row["seconds"] = time.perf_counter() - t_epoch
        state["history"].append(row)
        state["epoch"] = epoch
        state["elapsed"] = time.perf_counter() - t_start
        done = (state["elapsed"] + eval_seconds >= budget) if budget else state["step"] >= total_steps
        score = row.get("val_acc", epoch)  # without val, the last epoch is kept
        if score >= state["best_acc"]:
            state["best_acc"] = score
            best = {k: v.detach().clone() for k, v in kept.state_dict().items()}
            if out is not None:
                metrics = {k: row[k] for k in ("epoch", "val_acc", "val_loss") if k in row}
                checkpoint.save(out, kept, {**meta, "metrics": metrics, "history": state["history"]})
        if out is not None:
            _save_state(out / STATE, model, ema, opt, (gen, augment.g), state)
        if progress:
            tqdm.write(_format_row(row, cfg))
    summary = dict(meta, history=state["history"], epochs_run=state["epoch"], seconds=state["elapsed"],
                   best_val_acc=state["best_acc"] if val is not None else None, out=str(out) if out else None)
    if out is not None:
        # the kept epoch's checkpoint gets the whole run's history, for the curves
        checkpoint.update_meta(out, history=state["history"], seconds=state["elapsed"])
    summary["network"] = _kept_network(best, ema.module if ema is not None else model, out, device)
    return summary


def _distill_target(y, soft, idx, cfg: TrainConfig, progress: float) -> torch.Tensor:
    """PS-KD's soft target: the smoothed label blended with last epoch's prediction, its weight growing with progress."""
    alpha = cfg.self_distill * progress
    hard = F.one_hot(y, soft.shape[1]).float() * (1 - cfg.label_smoothing) + cfg.label_smoothing / soft.shape[1]
    return (1 - alpha) * hard + alpha * soft[idx]


def _step(model, opt, scaler, x, y, mix, weight, label_smoothing: float, device, precision: str, target=None):
    """One optimisation step on a batch (target: soft labels, else y); returns (loss, logits)."""
    if mix:
        x, target = mix(x, y)
    with autocast(device, precision):
        logits = model(x)
        if target is not None:
            loss = torch.sum(-target * F.log_softmax(logits.float(), -1), -1).mean()
        else:
            loss = F.cross_entropy(logits.float(), y, weight=weight, label_smoothing=label_smoothing)
    opt.zero_grad(set_to_none=True)
    if scaler:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        opt.step()
    return loss, logits


def _val_scores(model, val: FERData, device, precision: str) -> dict:
    """Val loss and accuracy of the model that would be kept."""
    logits = run_model(model, val.images, device=device, precision=precision)
    return dict(val_loss=F.cross_entropy(logits, val.labels).item(),
                val_acc=(logits.argmax(-1) == val.labels).float().mean().item())


def _kept_network(best: dict | None, last: torch.nn.Module, out: Path | None, device) -> torch.nn.Module:
    """The best-val epoch's model: from this run's weights, or from out when a resumed run beat nothing."""
    if best is None and out is not None:
        return checkpoint.load(out, device)[0]
    network = copy.deepcopy(last)
    if best is not None:
        network.load_state_dict(best)
    return network.eval()


def _format_row(row: dict, cfg: TrainConfig) -> str:
    """One line per epoch for the log."""
    total = f"/{cfg.epochs}" if not cfg.minutes else ""
    val = f"  val loss {row['val_loss']:.3f} acc {row['val_acc']:.3f}" if "val_acc" in row else ""
    return (f"epoch {row['epoch']}{total}  train loss {row['train_loss']:.3f} acc {row['train_acc']:.3f}{val}"
            f"  {row['seconds']:.0f}s  {row['images_per_s']:.0f} img/s")


def _save_state(path: Path, model, ema, opt, gens, state: dict) -> None:
    """Write the resume state atomically: model, EMA, optimizer, RNGs and progress."""
    blob = dict(model=model.state_dict(), ema=ema.module.state_dict() if ema is not None else None,
                opt=opt.state_dict(), gen=gens[0].get_state(), aug=gens[1].get_state(), torch_rng=torch.get_rng_state(),
                py_rng=random.getstate(), **state)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def _load_state(path: Path, model, ema, opt, gen, aug_gen) -> dict:
    """Restore what _save_state wrote; weights_only=True, so nothing is unpickled."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure here means the same thing to the user
        raise checkpoint.CheckpointError(f"{path}: unreadable resume state ({e.__class__.__name__}); "
                                         "delete it to start over") from None
    model.load_state_dict(blob["model"])
    if ema is not None and blob["ema"] is not None:
        ema.module.load_state_dict(blob["ema"])
    opt.load_state_dict(blob["opt"])
    gen.set_state(blob["gen"])
    aug_gen.set_state(blob["aug"])
    torch.set_rng_state(blob["torch_rng"])
    random.setstate(blob["py_rng"])
    return {k: blob.get(k) for k in ("epoch", "step", "elapsed", "history", "best_acc", "soft")}
