"""Fine-tuning: a run that starts from a trained checkpoint's weights (fernb's packaged model, or your own run)."""
from __future__ import annotations

import torch

from fernb import checkpoint
from fernb.errors import ConfigError
from fernb.models import Ensemble


def init_path(init: str):
    """The checkpoint folder --init names: 'packaged' is fernb's own model."""
    if init != "packaged":
        return init
    path = checkpoint.packaged_checkpoint()
    if path is None:
        raise checkpoint.CheckpointError("init=packaged: this install of fernb has no packaged model; pass a "
                                         "checkpoint folder of your own")
    return path


def init_model(cfg) -> str | None:
    """The model a fine-tuning run builds: its init checkpoint's, which cfg.model may name but not change."""
    if not cfg.init:
        return None
    meta = checkpoint.read_meta(init_path(cfg.init))
    if cfg.model not in ("auto", meta["model"]):
        raise ConfigError(f"init={cfg.init}: a {meta['model']} checkpoint, but model={cfg.model}; leave the model out "
                          "(fine-tuning keeps the checkpoint's)")
    return meta["model"].split("+")[0]  # an ensemble's first member: its best network, fine-tuned alone


def start_from(model: torch.nn.Module, init: str | None, classes) -> None:
    """Copy a checkpoint's weights into model for fine-tuning: all of them when its classes are the same, else
    all but the classifier, which stays new (the grey 48x48 input is the same either way); init None: nothing."""
    if not init:
        return
    source, meta = checkpoint.load(init_path(init))
    source = source.members[0] if isinstance(source, Ensemble) else source  # as init_model built
    state = source.state_dict()
    if list(meta["classes"]) != list(classes):
        head = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1]
        state = {k: v for k, v in state.items() if not k.startswith(f"{head}.")}
    model.load_state_dict(state, strict=False)
