"""fit(): train a model on in-memory tensors, by epochs or by a time budget, with EMA, val-based selection and resume.

The story of a run, top to bottom: set up (model, EMA, optimizer, augmentation, precision), then epochs of
steps, each epoch followed by validating the EMA weights and keeping them when val accuracy is the best yet.
"""
from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.optim import create_optimizer_v2
from timm.utils import ModelEmaV3
from tqdm.auto import tqdm

from fernb import checkpoint
from fernb.augment import DEFAULT, MEAN, STD, AugmentConfig, BatchAugment, mixer, to_input
from fernb.data import IMAGE_SIZE, FERData
from fernb.device import autocast, cpu_bf16, pick_device, pick_precision, seconds_per_step
from fernb.errors import BudgetError, CheckpointError, ConfigError
from fernb.evaluate import run_model
from fernb.files import atomic_write
from fernb.models import FERNETS, count_parameters, create_model

STATE = "resume.pt"  # training state for --resume: tensors and plain values, read back with weights_only=True
RECIPE_MODEL = "fernet_l"  # the default recipe's model (README: results)
AUTO_EPOCHS = 40  # with a CPU budget, 'auto' picks the widest FERNet measured to get this many epochs in it
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


@dataclass
class TrainConfig:
    """Everything that defines a training run; checked on creation, saved into the checkpoint's config.json."""

    model: str = "auto"  # auto: the recipe's fernet_l, or for a CPU time budget the widest FERNet that fits it
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
    augment: AugmentConfig = field(default_factory=lambda: DEFAULT)
    pretrained: bool = False
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto | bf16 | fp16 | fp32

    def __post_init__(self):
        check_config(self)

    def to_dict(self) -> dict:
        """Plain dict for JSON."""
        return asdict(self)

    @classmethod
    def short(cls, **changes) -> "TrainConfig":
        """The recipe for a short run (a time budget, notebook 03): the long recipe's regularisation makes a small
        model underfit in a few dozen epochs, so lighter weight decay, no dropout and no erasing (README: +2.1
        points of val accuracy in 5 minutes); then your changes."""
        return cls(**{"weight_decay": 0.01, "drop": 0.0, "augment": replace(DEFAULT, erasing=0.0), **changes})

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The config to_dict wrote (a checkpoint's, for --resume); options that fernb no longer has are left out."""
        aug = {k: v for k, v in d.get("augment", {}).items() if k in {f.name for f in fields(AugmentConfig)}}
        aug["scale"] = tuple(aug.get("scale", DEFAULT.scale))
        known = {f.name for f in fields(cls)} - {"augment"}
        return cls(**{k: v for k, v in d.items() if k in known}, augment=AugmentConfig(**aug))


# name -> (kind, lowest, highest, lowest allowed?): the one place a training option's range is stated
_RANGES = {"epochs": (int, 1, None, True), "minutes": (float, 0, None, False), "batch_size": (int, 1, None, True),
           "lr": (float, 0, None, False), "weight_decay": (float, 0, None, True), "warmup": (float, 0, 1, True),
           "label_smoothing": (float, 0, 1, True), "ema_decay": (float, 0, 1, True), "drop": (float, 0, 1, True),
           "seed": (int, 0, None, True)}


def check_config(cfg: TrainConfig) -> None:
    """Refuse, with one line naming the option, any value out of range or of the wrong type, and options that clash."""
    for name, (kind, lo, hi, lo_ok) in _RANGES.items():
        v = getattr(cfg, name)
        if v is None and name in ("minutes", "drop"):
            continue
        number = isinstance(v, (int, float)) and not isinstance(v, bool) and (kind is float or isinstance(v, int))
        if not number or not math.isfinite(v) or (v < lo if lo_ok else v <= lo) or (hi is not None and v >= hi):
            what = "a whole number" if kind is int else "a number"
            bound = f"{'>=' if lo_ok else '>'} {lo}" + (f" and < {hi}" if hi is not None else "")
            raise ConfigError(f"{name}={v!r}: must be {what} {bound}")
    if cfg.precision not in PRECISIONS:
        raise ConfigError(f"precision={cfg.precision!r}: must be one of {', '.join(PRECISIONS)}")
    if cfg.class_weights and (cfg.augment.mixup > 0 or cfg.augment.cutmix > 0):
        raise ConfigError("class_weights cannot be combined with mixup/cutmix (their soft targets ignore class "
                          "weights); turn one of them off")


@dataclass
class RunState:
    """Where a run stands; saved in the resume state so that --resume goes on from there."""

    epoch: int = 0
    step: int = 0
    elapsed: float = 0.0  # seconds of training and validation so far, across resumes
    best_acc: float = -1.0
    history: list[dict] = field(default_factory=list)


@dataclass
class Trainer:
    """What the steps of a run share: the model, its EMA and optimizer, the data on the device, the schedule."""

    cfg: TrainConfig
    model: torch.nn.Module
    ema: ModelEmaV3 | None
    opt: torch.optim.Optimizer
    augment: BatchAugment
    gen: torch.Generator  # draws each epoch's order of faces
    images: torch.Tensor
    labels: torch.Tensor
    device: torch.device
    precision: str
    steps_per_epoch: int
    weight: torch.Tensor | None = None  # class weights of the loss
    mix: object = None  # timm's Mixup/CutMix when on
    scaler: torch.amp.GradScaler | None = None  # fp16 only
    started: float = 0.0  # perf_counter() at which elapsed time was zero
    eval_seconds: float = 0.0  # how long validating takes, kept free at the end of a time budget

    @property
    def kept(self) -> torch.nn.Module:
        """The weights that are validated and kept: the EMA's when EMA is on."""
        return self.ema.module if self.ema is not None else self.model


# ---------------------------------------------------------------- fit, top to bottom


def fit(train: FERData, val: FERData | None, cfg: TrainConfig = TrainConfig(), out: str | Path | None = None,
        resume: bool = False, progress: bool = True) -> dict:
    """Train cfg.model on train, keep the epoch with the best val accuracy (the last without val) and save it to out;
    returns the run summary, whose "network" is the kept model (EMA weights when EMA is on).

    With cfg.minutes the LR schedule spans the budget (progress = elapsed time / budget), so training ends on time
    with the schedule finished; set-up (choosing the model and precision by measurement) is not counted.
    """
    out = Path(out) if out is not None else None
    t = setup(train, cfg)
    state = load_state(out / STATE, t) if resume and out is not None and (out / STATE).exists() else RunState()
    meta = run_meta(t, train, val)
    t.started, t.eval_seconds = time.perf_counter() - state.elapsed, len(val or []) / 2000  # refined by epoch 1
    best = None  # the kept epoch's weights
    while progress_at(t, state) < 1:
        row = train_epoch(t, state, progress)
        if row is None:  # the budget ended before a step of this epoch
            break
        t_val = time.perf_counter()
        if val is not None and len(val):
            row.update(validate(t.kept, val, t))
            t.eval_seconds = time.perf_counter() - t_val
        row["seconds"] = time.perf_counter() - t_val + row.pop("train_seconds")
        state.history.append(row)
        state.epoch, state.elapsed = row["epoch"], time.perf_counter() - t.started
        if row.get("val_acc", row["epoch"]) >= state.best_acc:  # without val, every epoch beats the last
            state.best_acc = row.get("val_acc", row["epoch"])
            best = {k: v.detach().clone() for k, v in t.kept.state_dict().items()}
            if out is not None:
                save_kept(out, t, meta, state)
        if out is not None:
            save_state(out / STATE, t, state)
        if progress:
            tqdm.write(format_row(row, t.cfg))
    if not state.history:
        raise BudgetError(f"minutes={cfg.minutes}: too short to train one step of {t.cfg.model}; give more minutes")
    return finish(t, state, meta, best, out, val)


# ---------------------------------------------------------------- the steps of fit


def setup(train: FERData, cfg: TrainConfig) -> Trainer:
    """Seed everything, pick the device, the model ('auto') and the precision, and build what training needs."""
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    device = pick_device(cfg.device)
    images, labels = train.images.to(device), train.labels.to(device)
    bs = min(cfg.batch_size, len(labels))
    x, y = to_input(images[:bs], channels_last=True), labels[:bs]
    cfg = replace(cfg, model=resolve_model(cfg, device, x, y, len(labels)))
    model = create_model(cfg.model, num_classes=len(train.classes), pretrained=cfg.pretrained, drop=cfg.drop)
    model = model.to(device, memory_format=torch.channels_last)
    precision = pick_precision(model, x, y, device, cfg.precision)
    weight = None
    if cfg.class_weights:
        counts = torch.bincount(train.labels, minlength=len(train.classes)).float().clamp(min=1)
        weight = (counts.sum() / counts / len(counts)).to(device)
    return Trainer(cfg=cfg, model=model, ema=ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=True)
                   if cfg.ema_decay > 0 else None,
                   opt=create_optimizer_v2(model, opt="adamw", lr=cfg.lr, weight_decay=cfg.weight_decay),  # no decay
                   augment=BatchAugment(cfg.augment, cfg.seed, device),                # on norms and biases
                   gen=torch.Generator().manual_seed(cfg.seed), images=images, labels=labels, device=device,
                   precision=precision, steps_per_epoch=len(labels) // bs, weight=weight,
                   mix=mixer(cfg.augment, len(train.classes), cfg.label_smoothing),
                   scaler=torch.amp.GradScaler(device.type) if precision == "fp16" else None)


def progress_at(t: Trainer, state: RunState) -> float:
    """How far through its schedule the run is, in [0, 1]: steps over total steps, or time over the budget."""
    if t.cfg.minutes:
        return min(1.0, (time.perf_counter() - t.started + t.eval_seconds) / (t.cfg.minutes * 60))
    return min(1.0, state.step / max(1, t.cfg.epochs * t.steps_per_epoch))


def train_epoch(t: Trainer, state: RunState, progress: bool = True) -> dict | None:
    """One pass over the training faces in a fresh order, ended early when the schedule ends; returns its log row."""
    t.model.train()
    started, seen, bs = time.perf_counter(), 0, min(t.cfg.batch_size, len(t.labels))
    loss_sum, correct = torch.zeros((), device=t.device), torch.zeros((), device=t.device, dtype=torch.long)
    order = torch.randperm(len(t.labels), generator=t.gen).to(t.device)
    bar = tqdm(range(t.steps_per_epoch), desc=f"epoch {state.epoch + 1}", disable=not progress, leave=False)
    for i in bar:
        p = progress_at(t, state)
        if p >= 1.0:
            break
        for g in t.opt.param_groups:
            g["lr"] = lr_at(p, t.cfg.lr, t.cfg.warmup)
        idx = order[i * bs:(i + 1) * bs]
        x, y = t.augment(to_input(t.images[idx])).contiguous(memory_format=torch.channels_last), t.labels[idx]
        loss, logits = train_step(t, x, y)
        if t.ema is not None:
            t.ema.update(t.model, step=state.step)
        state.step += 1
        seen += len(y)
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(-1) == y).sum()
        if i % 20 == 0:
            bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}", acc=f"{correct.item() / seen:.3f}")
    if seen == 0:
        return None
    if seen < t.steps_per_epoch * bs and state.epoch == 0:
        tqdm.write(f"fernb: the {t.cfg.minutes} min budget ended after {seen // bs} of {t.steps_per_epoch} steps of "
                   "the first epoch; the checkpoint is usable but undertrained: give more minutes")
    seconds = time.perf_counter() - started
    return dict(epoch=state.epoch + 1, steps=seen // bs, train_loss=loss_sum.item() / seen,
                train_acc=correct.item() / seen, images_per_s=seen / seconds, lr=t.opt.param_groups[0]["lr"],
                train_seconds=seconds)


def train_step(t: Trainer, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on a batch (mixup/cutmix turns y into soft targets); returns (loss, logits)."""
    target = None
    if t.mix is not None:
        x, target = t.mix(x, y)
    with autocast(t.device, t.precision):
        logits = t.model(x)
        if target is not None:
            loss = torch.sum(-target * F.log_softmax(logits.float(), -1), -1).mean()
        else:
            loss = F.cross_entropy(logits.float(), y, weight=t.weight, label_smoothing=t.cfg.label_smoothing)
    t.opt.zero_grad(set_to_none=True)
    if t.scaler is not None:  # fp16: scale the loss so small gradients do not underflow to zero
        t.scaler.scale(loss).backward()
        t.scaler.step(t.opt)
        t.scaler.update()
    else:
        loss.backward()
        t.opt.step()
    return loss, logits


def validate(model: torch.nn.Module, val: FERData, t: Trainer) -> dict:
    """Val loss (plain cross-entropy: no label smoothing) and accuracy of the model that would be kept."""
    logits = run_model(model, val.images, device=t.device, precision=t.precision)
    return dict(val_loss=F.cross_entropy(logits, val.labels).item(),
                val_acc=(logits.argmax(-1) == val.labels).float().mean().item())


def run_meta(t: Trainer, train: FERData, val: FERData | None) -> dict:
    """What config.json records of a run: the model, classes, input, data, the split's hold-out, the config."""
    return dict(model=t.cfg.model, classes=list(train.classes), in_chans=1, input_size=[IMAGE_SIZE, IMAGE_SIZE],
                normalize={"mean": MEAN, "std": STD}, params=count_parameters(t.model), precision=t.precision,
                device=str(t.device), data=train.source, n_train=len(train), n_val=len(val) if val else 0,
                holdout=train.holdout if val else None, config=t.cfg.to_dict())


def save_kept(out: Path, t: Trainer, meta: dict, state: RunState) -> None:
    """Write the kept epoch's weights and its metrics to the checkpoint directory."""
    row = state.history[-1]
    metrics = {k: row[k] for k in ("epoch", "val_acc", "val_loss") if k in row}
    checkpoint.save(out, t.kept, {**meta, "metrics": metrics, "history": state.history, "seconds": state.elapsed})


def finish(t: Trainer, state: RunState, meta: dict, best: dict | None, out: Path | None, val) -> dict:
    """The run summary; the checkpoint gets the whole run's history, for the curves."""
    if out is not None and (out / checkpoint.CONFIG).exists():
        checkpoint.update_meta(out, history=state.history, seconds=state.elapsed)
    if best is None and out is not None:  # a resumed run whose epochs all beat nothing kept before
        network = checkpoint.load(out, t.device)[0]
    else:
        network = copy.deepcopy(t.kept)
        if best is not None:
            network.load_state_dict(best)
    return dict(meta, history=state.history, epochs_run=state.epoch, seconds=state.elapsed,
                best_val_acc=state.best_acc if val is not None else None, out=str(out) if out else None,
                network=network.eval())


# ---------------------------------------------------------------- the schedule and the model per budget


def lr_at(progress: float, peak: float, warmup: float) -> float:
    """One-cycle LR at progress in [0, 1]: linear warm-up to peak, then cosine down to zero."""
    if progress < warmup:
        return peak * progress / warmup
    p = min(1.0, (progress - warmup) / max(1e-8, 1 - warmup))
    return peak * 0.5 * (1 + math.cos(math.pi * p))


def resolve_model(cfg: TrainConfig, device: torch.device, x: torch.Tensor, y: torch.Tensor, n_train: int = 28709) -> str:
    """cfg.model, with 'auto' replaced by the recipe's model, or for a CPU budget by the widest FERNet that is
    measured, on this machine, to get AUTO_EPOCHS epochs in it (so any CPU gets a sensible number of epochs)."""
    if cfg.model != "auto":
        return cfg.model
    if cfg.minutes is None or device.type != "cpu":
        return RECIPE_MODEL
    precision = cfg.precision if cfg.precision != "auto" else ("bf16" if cpu_bf16() else "fp32")
    x, y = x[:64], y[:64]  # a small batch keeps the measurement to a few seconds even for fernet_l in fp32
    chosen = next(iter(FERNETS))
    for name in FERNETS:  # narrowest first; stop at the first that does not fit
        model = create_model(name).to(device, memory_format=torch.channels_last)
        epoch_seconds = seconds_per_step(model, x, y, device, precision, steps=2) * n_train / len(y)
        if AUTO_EPOCHS * epoch_seconds * 1.1 > cfg.minutes * 60:  # +10%: validation
            break
        chosen = name
    return chosen


def format_row(row: dict, cfg: TrainConfig) -> str:
    """One line per epoch for the log."""
    total = f"/{cfg.epochs}" if not cfg.minutes else ""
    val = f"  val loss {row['val_loss']:.3f} acc {row['val_acc']:.3f}" if "val_acc" in row else ""
    return (f"epoch {row['epoch']}{total}  train loss {row['train_loss']:.3f} acc {row['train_acc']:.3f}{val}"
            f"  {row['seconds']:.0f}s  {row['images_per_s']:.0f} img/s")


# ---------------------------------------------------------------- resume


def save_state(path: Path, t: Trainer, state: RunState) -> None:
    """Write the resume state atomically: model, EMA, optimizer, random generators and where the run stands."""
    blob = dict(model=t.model.state_dict(), ema=t.kept.state_dict() if t.ema is not None else None,
                opt=t.opt.state_dict(), gen=t.gen.get_state(), aug=t.augment.g.get_state(),
                torch_rng=torch.get_rng_state(), py_rng=random.getstate(), **asdict(state))
    atomic_write(path, lambda tmp: torch.save(blob, tmp))


def load_state(path: Path, t: Trainer) -> RunState:
    """Restore what save_state wrote; weights_only=True, so nothing is unpickled."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        t.model.load_state_dict(blob["model"])
        if t.ema is not None and blob["ema"] is not None:
            t.ema.module.load_state_dict(blob["ema"])
        t.opt.load_state_dict(blob["opt"])
    except Exception as e:  # noqa: BLE001 - unreadable, or another model's: the same advice either way
        raise CheckpointError(f"{path}: unreadable resume state, or one of another model ({e.__class__.__name__}); "
                              "delete it to start over") from None
    t.gen.set_state(blob["gen"])
    t.augment.g.set_state(blob["aug"])
    torch.set_rng_state(blob["torch_rng"])
    random.setstate(blob["py_rng"])
    return RunState(**{f.name: blob[f.name] for f in fields(RunState)})
