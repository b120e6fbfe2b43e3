"""fit(): train a model on in-memory tensors, by epochs or by a time budget, with EMA, val-based selection and resume.

The story of a run, top to bottom: `fit` sets up a `Run` (model, EMA, optimizer, augmentation, precision), then
trains it epoch by epoch; after each epoch it validates the EMA weights and keeps them when val accuracy is the
best yet. One step (`Run.step`) is: augment and mix a batch, forward, loss, backward, optimizer step, EMA update.
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
from timm.utils import ModelEmaV3
from tqdm.auto import tqdm

from fernb import checkpoint
from fernb.augment import DEFAULT, MEAN, STD, AugmentConfig, BatchAugment, Mix, to_input
from fernb.budget import resolve_model
from fernb.data import IMAGE_SIZE, FERData
from fernb.device import autocast, pick_device, pick_precision
from fernb.errors import BudgetError, CheckpointError, ConfigError, DataError, check_choice, check_number, check_type
from fernb.evaluate import run_model
from fernb.files import atomic_write, claim_run_folder
from fernb.finetune import init_model, start_from
from fernb.models import count_parameters, create_model

STATE = "resume.pt"  # training state for --resume: tensors and plain values, read back with weights_only=True
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
VAL_FACES_PER_S = 2000  # a first guess at validation speed, kept free at a budget's end until epoch 1 measures it


@dataclass
class TrainConfig:
    """Everything that defines a training run; checked on creation, saved into the checkpoint's config.json."""

    model: str = "auto"  # auto: the recipe's fernet_l, or for a CPU time budget the widest FERNet that fits it
    epochs: int = 60
    minutes: float | None = None  # a time budget: the LR schedule spans it, and training ends on time
    batch_size: int = 256
    lr: float = 4e-3  # AdamW's peak learning rate in the one-cycle schedule (lr_at)
    weight_decay: float = 0.05  # on conv and linear weights only, never on biases and norms (decay_groups)
    warmup: float = 0.03  # fraction of the run spent warming the LR up
    label_smoothing: float = 0.1
    # EMA of the weights, evaluated and kept. Its decay warms up as timm's ModelEmaV3 does, 1 - (1 + step)^(-2/3),
    # up to this ceiling: 0.995 after 3,000 steps, 0.997 after 6,000 (the 60-epoch recipe); 0 turns the EMA off
    ema_decay: float = 0.999
    drop: float | None = None  # dropout before the classifier; None: the model's own default (FERNet 0.2)
    class_weights: bool = False  # weight the loss by inverse class frequency (disgust is 1.5% of train)
    augment: AugmentConfig = field(default_factory=lambda: DEFAULT)
    pretrained: bool | str = False  # a timm model from ImageNet weights (True), or from a local weights file
    init: str | None = None  # fine-tune: start from this checkpoint's weights ("packaged": fernb's own model)
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto | bf16 | fp16 | fp32

    def __post_init__(self):
        check_config(self)

    @classmethod
    def short(cls, **changes) -> "TrainConfig":
        """The recipe for a short run (a time budget, notebook 03): the long recipe's regularisation makes a small
        model underfit in a few dozen epochs, so lighter weight decay, no dropout and no erasing (selected on val,
        README); then your changes."""
        return cls(**{"weight_decay": 0.01, "drop": 0.0, "augment": replace(DEFAULT, erasing=0.0), **changes})

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The config asdict wrote (a checkpoint's, for --resume); options that fernb no longer has are left out."""
        aug = {k: v for k, v in d.get("augment", {}).items() if k in {f.name for f in fields(AugmentConfig)}}
        aug["scale"] = tuple(aug.get("scale", DEFAULT.scale))
        known = {f.name for f in fields(cls)} - {"augment"}
        return cls(**{k: v for k, v in d.items() if k in known}, augment=AugmentConfig(**aug))


def check_config(cfg: TrainConfig) -> None:
    """Refuse, with one line naming the option, a value of the wrong type or out of range, and options that clash."""
    check_type("model", cfg.model, str)
    if "+" in cfg.model:
        raise ConfigError(f"model={cfg.model}: an ensemble is not trained as one; train each member, then join the "
                          "runs with scripts/package_model.py")
    check_number("epochs", cfg.epochs, 1, whole=True)
    check_number("minutes", cfg.minutes, 0, lo_open=True, optional=True)
    check_number("batch_size", cfg.batch_size, 1, whole=True)
    check_number("lr", cfg.lr, 0, lo_open=True)
    check_number("weight_decay", cfg.weight_decay, 0)
    for name in ("warmup", "label_smoothing", "ema_decay"):
        check_number(name, getattr(cfg, name), 0, 1)
    check_number("drop", cfg.drop, 0, 1, optional=True)
    check_type("class_weights", cfg.class_weights, bool)
    check_type("pretrained", cfg.pretrained, (bool, str))
    check_type("init", cfg.init, (str, type(None)))
    check_type("augment", cfg.augment, AugmentConfig)
    check_number("seed", cfg.seed, 0, 2**32, whole=True)  # numpy and torch both take seeds below 2**32
    check_type("device", cfg.device, str)
    check_choice("precision", cfg.precision, PRECISIONS)
    if (cfg.augment.mixup > 0 or cfg.augment.cutmix > 0) and cfg.batch_size % 2:
        raise ConfigError(f"batch_size={cfg.batch_size}: mixup and cutmix pair faces, so it must be even")
    if cfg.class_weights and (cfg.augment.mixup > 0 or cfg.augment.cutmix > 0):
        raise ConfigError("class_weights cannot be combined with mixup/cutmix (their soft targets ignore class "
                          "weights); turn one of them off")


# ---------------------------------------------------------------- fit, top to bottom


def fit(train: FERData, val: FERData | None, cfg: TrainConfig | None = None, out: str | Path | None = None,
        resume: bool = False, progress: bool = True, force: bool = False, note: dict | None = None) -> dict:
    """Train cfg.model on train, keep the epoch with the best val accuracy (the last without val) and save it to out;
    returns the run summary, whose "network" is the kept model (EMA weights when EMA is on). out may hold another
    run only with resume (continue it) or force (overwrite it), and is locked while the run writes it; note holds
    fields that config.json records beside the run's own, from its first save (notebook 03 records who made it).

    With cfg.minutes the LR schedule spans the budget (progress = elapsed time / budget), so training ends on time
    with the schedule finished; set-up (choosing the model and precision by measurement) is not counted.
    """
    check_splits(train, val)
    out = Path(out).expanduser() if out is not None else None
    with claim_run_folder(out, resume, force, inputs=[train.source]):
        return run_epochs(train, val, cfg or TrainConfig(), out, resume and out is not None, progress, note or {})


def run_epochs(train: FERData, val: FERData | None, cfg: TrainConfig, out: Path | None, resume: bool,
               progress: bool, note: dict) -> dict:
    """fit's story once its output is claimed: set up, epochs of training, validate, keep, save."""
    run = Run(train, cfg)
    if resume and (out / STATE).exists():
        check_same_data(out, train)
        run.load_state(out)
    meta = {**run.meta(train, val), **note}
    run.start(val)
    while run.progress() < 1:  # epochs until the schedule ends: cfg.epochs of them, or as many as the budget holds
        row = run.train_epoch(progress)
        if row is None:  # the budget ended before a step of this epoch
            break
        run.validate(val, row)
        improved = val is None or row["val_acc"] >= run.best_acc  # the keep rule; without val, the last epoch
        run.keep(row, improved)
        if out is not None:
            run.save(out, meta, improved)
        if progress:
            tqdm.write(format_row(row, run.cfg))
    return run.finish(meta, out, val)


def check_splits(train: FERData, val: FERData | None) -> None:
    """Refuse an empty split before any work: nothing to learn from, or a val accuracy of 0 / 0."""
    if not len(train):
        raise DataError(f"{train.source}: the training split is empty; point --data at a source with training faces")
    if val is not None and not len(val):
        raise DataError(f"{val.source}: the val split is empty; raise --val-fraction, or pass 0 (no val: the last "
                        "epoch is kept)")


def check_same_data(out: Path, train: FERData) -> None:
    """Refuse to resume a run on training faces other than those it started on."""
    saved = checkpoint.read_meta(out).get("train_key") if (out / checkpoint.CONFIG).exists() else None
    if saved is not None and saved != train.fingerprint():
        raise CheckpointError(f"{out}: its run trained on other faces than {train.source} gives now (another source, "
                              "or changed files); resume it on its own data, or start a new run with another --out")


class Run:
    """One training run: the model, its EMA and optimizer, the data on the device, and where the run stands."""

    def __init__(self, train: FERData, cfg: TrainConfig):
        """Seed everything, pick the device, the model ('auto') and the precision, and build what training needs."""
        torch.manual_seed(cfg.seed)  # model weights, dropout; the augmentation seeds its own (BatchAugment)
        self.device = pick_device(cfg.device)
        self.images, self.labels = train.images.to(self.device), train.labels.to(self.device)
        self.batch_size = min(cfg.batch_size, len(self.labels))
        x, y = to_input(self.images[:self.batch_size]), self.labels[:self.batch_size]
        self.cfg = cfg = replace(cfg, model=init_model(cfg) or resolve_model(cfg, self.device, x, y, len(self.labels)))
        model = create_model(cfg.model, num_classes=len(train.classes), pretrained=cfg.pretrained, drop=cfg.drop)
        start_from(model, cfg.init, train.classes)  # fine-tuning: a checkpoint's weights; else as built
        self.model = model.to(self.device, memory_format=torch.channels_last)
        self.precision = pick_precision(self.model, x, y, self.device, cfg.precision)
        self.ema = ModelEmaV3(self.model, decay=cfg.ema_decay, use_warmup=True)  # decay 0: an exact copy
        self.opt = torch.optim.AdamW(decay_groups(self.model, cfg.weight_decay), lr=cfg.lr)
        # fp16 only: scale the loss so small gradients do not underflow to zero; disabled, it passes them through
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.augment = BatchAugment(cfg.augment, cfg.seed, self.device)
        self.mix = Mix(cfg.augment, len(train.classes), cfg.label_smoothing, cfg.seed)  # off: passes (x, y) through
        self.smoothing = 0.0 if self.mix.on else cfg.label_smoothing  # mixup's soft targets are smoothed already
        if train.targets is not None and self.mix.on:
            raise ConfigError("mixup and cutmix mix hard labels, but these faces carry soft targets (FER+ probability "
                              "labels); turn mixup and cutmix off, or use the majority labels")
        self.targets = self.labels if train.targets is None else train.targets.to(self.device)  # what the loss learns
        self.weight = class_weights(train.labels, len(train.classes)).to(self.device) if cfg.class_weights else None
        self.order = torch.Generator().manual_seed(cfg.seed)  # draws each epoch's order of faces
        self.steps_per_epoch = len(self.labels) // self.batch_size
        self.epoch, self.step_no, self.elapsed, self.best_acc, self.history, self.best = 0, 0, 0.0, -1.0, [], None

    def step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step on a batch of uint8 faces: augment, mix, forward, loss, backward, step, EMA."""
        for group in self.opt.param_groups:
            group["lr"] = lr
        x, target = self.mix(self.augment(to_input(x)), y)  # soft targets with mixup/cutmix, else y itself
        with autocast(self.device, self.precision):
            logits = self.model(x)
            loss = F.cross_entropy(logits.float(), target, weight=self.weight, label_smoothing=self.smoothing)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.ema.update(self.model, step=self.step_no)
        self.step_no += 1
        return loss, logits

    def train_epoch(self, progress: bool = True) -> dict | None:
        """One pass over the training faces in a fresh order, ended early when the schedule ends; its log row."""
        self.model.train()
        started, bs, seen = time.perf_counter(), self.batch_size, 0
        loss_sum, correct = torch.zeros((), device=self.device), torch.zeros((), device=self.device, dtype=torch.long)
        order = torch.randperm(len(self.labels), generator=self.order).to(self.device)
        bar = tqdm(range(self.steps_per_epoch), desc=f"epoch {self.epoch + 1}", disable=not progress, leave=False)
        for i in bar:
            if (p := self.progress()) >= 1:
                break
            idx = order[i * bs:(i + 1) * bs]
            loss, logits = self.step(self.images[idx], self.targets[idx], lr_at(p, self.cfg.lr, self.cfg.warmup))
            seen += len(idx)
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(-1) == self.labels[idx]).sum()
            if i % 20 == 0:
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}", acc=f"{correct.item() / seen:.3f}")
        seconds = time.perf_counter() - started
        return None if seen == 0 else dict(epoch=self.epoch + 1, steps=seen // bs, train_loss=loss_sum.item() / seen,
                                           train_acc=correct.item() / seen, images_per_s=seen / seconds,
                                           lr=self.opt.param_groups[0]["lr"], seconds=seconds)

    def validate(self, val: FERData | None, row: dict) -> None:
        """Add to the epoch's row the val loss (plain cross-entropy, no smoothing) and accuracy of the kept weights."""
        if val is None:
            return
        started = time.perf_counter()
        logits = run_model(self.ema.module, val.images, device=self.device, precision=self.precision)
        row.update(val_loss=F.cross_entropy(logits, val.labels).item(),
                   val_acc=(logits.argmax(-1) == val.labels).float().mean().item())
        self.eval_seconds = time.perf_counter() - started
        row["seconds"] += self.eval_seconds

    def keep(self, row: dict, improved: bool) -> None:
        """Log the epoch, stop a run whose loss is not a number, and hold the weights of an epoch that improved."""
        if not math.isfinite(row["train_loss"]):
            raise ConfigError(f"lr={self.cfg.lr}: the training loss became {row['train_loss']} in epoch {row['epoch']}"
                              "; the learning rate is likely too high: lower it (nothing of this epoch was kept)")
        if row["epoch"] == 1 and row["steps"] < self.steps_per_epoch:
            tqdm.write(f"fernb: the {self.cfg.minutes} min budget ended after {row['steps']} of {self.steps_per_epoch} "
                       "steps of the first epoch; the checkpoint is usable but undertrained: give more minutes")
        self.history.append(row)
        self.epoch, self.elapsed = row["epoch"], time.perf_counter() - self.started
        if improved:
            self.best_acc = row.get("val_acc", self.best_acc)
            self.best = {k: v.detach().clone() for k, v in self.ema.module.state_dict().items()}

    def progress(self) -> float:
        """How far through its schedule the run is, in [0, 1]: steps over all steps, or time over the budget."""
        if self.cfg.minutes:
            return min(1.0, (time.perf_counter() - self.started + self.eval_seconds) / (self.cfg.minutes * 60))
        return min(1.0, self.step_no / max(1, self.cfg.epochs * self.steps_per_epoch))

    def start(self, val: FERData | None) -> None:
        """Start the clock (a resumed run goes on from its elapsed time); guess validation's time until measured."""
        self.started = time.perf_counter() - self.elapsed
        self.eval_seconds = len(val or []) / VAL_FACES_PER_S

    def meta(self, train: FERData, val: FERData | None) -> dict:
        """What config.json records of a run: the model, classes, input, data, the split's hold-out, the config."""
        return dict(model=self.cfg.model, classes=list(train.classes), in_chans=1, input_size=[IMAGE_SIZE, IMAGE_SIZE],
                    normalize={"mean": MEAN, "std": STD}, params=count_parameters(self.model),
                    precision=self.precision, device=str(self.device), data=train.source, n_train=len(train),
                    n_val=len(val) if val else 0, holdout=train.holdout if val else None, config=asdict(self.cfg),
                    train_key=train.fingerprint())

    def save(self, out: Path, meta: dict, improved: bool) -> None:
        """Write the checkpoint when the epoch improved, and the resume state after every epoch."""
        if improved:
            metrics = {k: v for k, v in self.history[-1].items() if k in ("epoch", "val_acc", "val_loss")}
            checkpoint.save(out, self.ema.module, {**meta, "metrics": metrics, "history": self.history,
                                                   "seconds": self.elapsed})
        atomic_write(out / STATE, lambda tmp: torch.save(self.state_dict(), tmp))

    def finish(self, meta: dict, out: Path | None, val: FERData | None) -> dict:
        """The run summary with the kept network; the checkpoint gets the whole run's history, for the curves."""
        if not self.history:
            raise BudgetError(f"minutes={self.cfg.minutes}: too short to train one step of {self.cfg.model}; "
                              "give more minutes")
        if out is not None:
            checkpoint.update_meta(out, history=self.history, seconds=self.elapsed)
        network = copy.deepcopy(self.ema.module)
        network.load_state_dict(self.best)
        network.classes = tuple(meta["classes"])  # what its outputs mean, as a loaded checkpoint's model carries
        return dict(meta, history=self.history, epochs_run=self.epoch, seconds=self.elapsed, network=network.eval(),
                    best_val_acc=self.best_acc if val is not None else None, out=str(out) if out else None)

    # ------------------------------------------------------------ resume

    def state_dict(self) -> dict:
        """Everything --resume needs: weights, EMA, optimizer, every random generator and where the run stands."""
        return dict(model=self.model.state_dict(), ema=self.ema.module.state_dict(), opt=self.opt.state_dict(),
                    scaler=self.scaler.state_dict(), order=self.order.get_state(), aug=self.augment.g.get_state(),
                    mix=self.mix.g.get_state(), torch_rng=torch.get_rng_state(), py_rng=random.getstate(),
                    cuda_rng=torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [], epoch=self.epoch,
                    step=self.step_no, elapsed=self.elapsed, best_acc=self.best_acc, history=self.history)

    def load_state(self, out: Path) -> None:
        """Restore what state_dict saved in out, and the kept epoch's weights; weights_only=True unpickles nothing."""
        try:
            blob = torch.load(out / STATE, map_location="cpu", weights_only=True)
            for part, key in ((self.model, "model"), (self.ema.module, "ema"), (self.opt, "opt"), (self.scaler, "scaler")):
                part.load_state_dict(blob[key])
            for gen, key in ((self.order, "order"), (self.augment.g, "aug"), (self.mix.g, "mix")):
                gen.set_state(blob[key])
        except Exception as e:  # noqa: BLE001 - unreadable, or another model's: the same advice either way
            raise CheckpointError(f"{out / STATE}: unreadable resume state, or one of another model "
                                  f"({e.__class__.__name__}); delete it to start over") from None
        if (out / checkpoint.CONFIG).exists():  # before the generators: building a model draws from torch's
            self.best = checkpoint.load(out)[0].state_dict()
        torch.set_rng_state(blob["torch_rng"])
        if blob["cuda_rng"]:  # dropout and erasing on a GPU draw from its own generators
            torch.cuda.set_rng_state_all(blob["cuda_rng"])
        random.setstate(blob["py_rng"])
        self.epoch, self.step_no, self.elapsed, self.best_acc, self.history = (
            blob[k] for k in ("epoch", "step", "elapsed", "best_acc", "history"))


# ---------------------------------------------------------------- the pieces a run is made of


def decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW's parameter groups: weight decay on conv and linear weights, none on biases and norms' scales (the
    tensors of one dimension), as in nanoGPT and timm."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
            {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay}]


def class_weights(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Each class's loss weight, inverse to its frequency and 1 on average: rare classes count more."""
    counts = torch.bincount(labels, minlength=n_classes).float().clamp(min=1)
    return counts.sum() / counts / n_classes


def lr_at(progress: float, peak: float, warmup: float) -> float:
    """One-cycle LR at progress in [0, 1]: linear warm-up to peak, then cosine down to zero."""
    if progress < warmup:
        return peak * progress / warmup
    p = min(1.0, (progress - warmup) / max(1e-8, 1 - warmup))
    return peak * 0.5 * (1 + math.cos(math.pi * p))


def format_row(row: dict, cfg: TrainConfig) -> str:
    """An epoch's log line: losses, accuracies, time and throughput."""
    total = f"/{cfg.epochs}" if not cfg.minutes else ""
    val = f"  val loss {row['val_loss']:.3f} acc {row['val_acc']:.3f}" if "val_acc" in row else ""
    return (f"epoch {row['epoch']}{total}  train loss {row['train_loss']:.3f} acc {row['train_acc']:.3f}{val}"
            f"  {row['seconds']:.0f}s  {row['images_per_s']:.0f} img/s")
