"""What a time budget buys on this machine: the model that `model='auto'` picks, measured, not guessed."""
from __future__ import annotations

import torch

from fernb.augment import to_input
from fernb.device import cpu_bf16, pick_device, pick_precision, seconds_per_step
from fernb.finetune import init_model
from fernb.models import FERNETS, create_model

RECIPE_MODEL = "fernet_l"  # the default recipe's model (README: results)
AUTO_EPOCHS = 40  # with a CPU budget, 'auto' picks the widest FERNet measured to get this many epochs in it


def resolve_model(cfg, device: torch.device, x: torch.Tensor, y: torch.Tensor, n_train: int) -> str:
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


def what_it_buys(cfg, train) -> dict:
    """What cfg's budget buys on this machine, before any training: the model and precision fit would pick, an
    epoch's seconds measured over a few steps, and how many epochs fit in cfg.minutes (or cfg.epochs)."""
    device = pick_device(cfg.device)
    bs = min(cfg.batch_size, len(train))
    x, y = to_input(train.images[:bs]).to(device), train.labels[:bs].to(device)
    name = init_model(cfg) or resolve_model(cfg, device, x, y, len(train))  # fine-tuning keeps its checkpoint's model
    model = create_model(name, num_classes=len(train.classes), drop=cfg.drop).to(device, memory_format=torch.channels_last)
    precision = pick_precision(model, x, y, device, cfg.precision)
    epoch_seconds = seconds_per_step(model, x, y, device, precision) * (len(train) // bs)
    epochs = int(cfg.minutes * 60 / (epoch_seconds * 1.1)) if cfg.minutes else cfg.epochs  # +10%: validation
    return {"model": name, "device": str(device), "precision": precision, "epoch_seconds": epoch_seconds,
            "epochs": epochs, "minutes": cfg.minutes or epochs * epoch_seconds * 1.1 / 60}
