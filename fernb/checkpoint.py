"""Checkpoint directories: weights.safetensors plus config.json, written atomically and loaded without unpickling;
and which checkpoint a command uses when none is given."""
from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path

import torch
import safetensors.torch
from safetensors import SafetensorError

import fernb
from fernb.errors import CheckpointError, check_type
from fernb.files import atomic_write, atomic_writes
from fernb.models import create_model

WEIGHTS, CONFIG = "weights.safetensors", "config.json"
NEEDED = ("model", "classes")  # the keys of config.json that rebuilding a model needs
# the type of every config.json field a command reads (the rest is a record for people)
FIELDS = {"model": str, "classes": list, "in_chans": int, "params": int, "n_train": int, "n_val": (int, type(None)),
          "metrics": dict, "holdout": (dict, type(None)), "config": dict, "train_key": str, "history": list,
          "weights_sha256": str, "data": str, "members": list}
RUNS_DEFAULT = Path("runs/latest")  # where `fernb train` writes when no --out is given


def save(out: str | Path, model: torch.nn.Module, meta: dict, dtype: torch.dtype | None = None) -> Path:
    """Save model weights and metadata (architecture, classes, normalisation, config, metrics...) to a directory;
    dtype=torch.float16 stores the float tensors at half the size (load() gives float32 back)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    weights = safetensors.torch.save(state)
    meta = {**meta, "fernb_version": fernb.__version__, "torch_version": torch.__version__,
            "weights_sha256": hashlib.sha256(weights).hexdigest()}  # load checks that the two files belong together
    atomic_writes({out / WEIGHTS: lambda p: p.write_bytes(weights),
                   out / CONFIG: lambda p: p.write_text(json.dumps(meta, indent=1))})
    return out


def update_meta(out: str | Path, **fields) -> None:
    """Add or replace fields in a checkpoint's config.json, atomically."""
    meta = {**read_meta(out), **fields}
    atomic_write(Path(out) / CONFIG, lambda p: p.write_text(json.dumps(meta, indent=1)))


def read_meta(path: str | Path) -> dict:
    """The config.json of a checkpoint directory."""
    path = Path(path).expanduser()
    if path.is_file() and path.suffix in (".pt", ".pth", ".pkl", ".ckpt", ".bin"):
        raise CheckpointError(f"{path}: a pickled PyTorch file; fernb never unpickles checkpoints. Load it yourself "
                              "with torch.load(path, weights_only=True) and save it with fernb.checkpoint.save")
    if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
        raise CheckpointError(f"{path}: not a fernb checkpoint (expected {WEIGHTS} and {CONFIG} in a folder); "
                              "train one with `fernb train` or omit --checkpoint")
    try:
        meta = json.loads((path / CONFIG).read_text(encoding="utf-8-sig"))  # -sig: an editor's byte-order mark is fine
    except PermissionError:
        raise CheckpointError(f"{path / CONFIG}: not readable for you (permission denied); make it readable") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path / CONFIG}: unreadable JSON ({e}); the checkpoint is damaged, train it again") from None
    if not isinstance(meta, dict) or any(k not in meta for k in NEEDED):
        raise CheckpointError(f"{path / CONFIG}: not a fernb checkpoint's config (it needs the keys "
                              f"{', '.join(NEEDED)}); train one with `fernb train` or pass another --checkpoint")
    try:
        check_meta(meta)
    except CheckpointError as e:
        raise CheckpointError(f"{path / CONFIG}: {e}; the checkpoint is damaged: train it again, or pass another "
                              "--checkpoint") from None
    return meta


def check_meta(meta: dict) -> None:
    """Refuse config.json fields of the wrong type, before any command reads them."""
    for key, kind in FIELDS.items():
        if key in meta:
            check_type(key, meta[key], kind, CheckpointError)
    if meta.get("in_chans", 1) != 1:
        raise CheckpointError(f"in_chans={meta['in_chans']!r}: fernb's models take one (grey) channel")
    classes = meta["classes"]
    if not classes or not all(isinstance(c, str) and c for c in classes) or len(set(classes)) != len(classes):
        raise CheckpointError(f"classes={classes!r}: must be distinct class names")
    for key, kind in (("val_fraction", (int, float)), ("seed", int)):
        if meta.get("holdout") is not None:
            check_type(f"holdout.{key}", meta["holdout"].get(key), kind, CheckpointError)
    if meta.get("n_val") and "val_acc" in meta.get("metrics", {}):
        check_type("metrics.val_acc", meta["metrics"]["val_acc"], (int, float), CheckpointError)


def load(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the model a checkpoint describes and load its weights; returns (model in eval mode, meta)."""
    path = Path(path).expanduser()
    meta = read_meta(path)
    try:
        raw = (path / WEIGHTS).read_bytes()  # read once: the pickle check, the hash and the weights all use it
    except PermissionError:
        raise CheckpointError(f"{path / WEIGHTS}: not readable for you (permission denied); make it readable") from None
    # a zip written by torch.save, or a bare pickle: never opened. A safetensors file starts with its header's
    # 8-byte length, whose first byte may be 0x80 too, then the header's "{"
    if raw[8:9] != b"{" and (raw[:2] == b"PK" or raw[:1] == b"\x80"):
        raise CheckpointError(f"{path / WEIGHTS}: a pickled PyTorch file under a safetensors name; fernb never "
                              "unpickles checkpoints: save the weights with fernb.checkpoint.save")
    try:
        state = safetensors.torch.load(raw)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path / WEIGHTS}: unreadable or truncated ({str(e)[:80]}); the checkpoint is "
                              "damaged, train it again") from None
    if meta.get("weights_sha256") not in (None, hashlib.sha256(raw).hexdigest()):
        raise CheckpointError(f"{path}: {WEIGHTS} is not the file its {CONFIG} was saved with (another run's, or a "
                              "save cut short); train it again, or copy the two files together")
    model = create_model(meta["model"], num_classes=len(meta["classes"]), in_chans=meta.get("in_chans", 1))
    wanted = model.state_dict()
    wrong = [k for k, v in state.items() if k in wanted and wanted[k].is_floating_point() and not v.is_floating_point()]
    if wrong:
        raise CheckpointError(f"{path / WEIGHTS}: weights such as {wrong[0]} are {state[wrong[0]].dtype}, not floating "
                              "point; the checkpoint is damaged, train it again")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}  # a half-size checkpoint
    bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad:
        raise CheckpointError(f"{path / WEIGHTS}: weights such as {bad} hold NaN or infinity (a run that diverged); "
                              "train it again, with a lower --lr")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path / WEIGHTS}: weights do not fit model {meta['model']!r} "
                              f"({str(e).splitlines()[0][:100]}); the checkpoint is damaged") from None
    model.classes = tuple(meta["classes"])  # what its outputs mean, in order: predict maps labels through them
    return model.to(device).eval(), meta


def check_members(paths: list, metas: list[dict]) -> None:
    """Refuse, with one line, checkpoints that cannot be members of one ensemble: classes, normalisation, training
    data or val hold-out other than the first's (members, and the ensemble, are chosen on one val split)."""
    for path, meta in zip(paths[1:], metas[1:]):
        for key in ("classes", "holdout", "normalize", "train_key"):
            if meta.get(key) != metas[0].get(key):
                raise CheckpointError(f"{path}: its {key} ({meta.get(key)}) differs from {paths[0]}'s "
                                      f"({metas[0].get(key)}); the members of an ensemble share their classes, "
                                      "normalisation, training data and val hold-out")


def load_members(paths: list) -> list[tuple[torch.nn.Module, dict]]:
    """(model, meta) of each checkpoint, refused as check_members refuses them unless they can join one ensemble."""
    loaded = [load(path) for path in paths]
    check_members(paths, [meta for _, meta in loaded])
    return loaded


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """(model, meta) from a checkpoint directory, or from default_checkpoint() when path is None."""
    if path or not os.environ.get("FERNB_CHECKPOINT"):
        return load(path or default_checkpoint(), device)
    try:
        return load(default_checkpoint(), device)
    except CheckpointError as e:  # the user may not know where the path came from: say it
        raise CheckpointError(f"{e} (the checkpoint path came from $FERNB_CHECKPOINT)") from None


def packaged_checkpoint() -> Path | None:
    """The default model shipped inside the package, if this install has one."""
    path = Path(str(resources.files("fernb") / "weights" / "default"))
    return path if (path / WEIGHTS).is_file() else None


def default_checkpoint() -> Path:
    """The checkpoint used when none is given: $FERNB_CHECKPOINT, the packaged model, else the last `fernb train`."""
    if os.environ.get("FERNB_CHECKPOINT"):
        return Path(os.environ["FERNB_CHECKPOINT"])
    path = packaged_checkpoint() or (RUNS_DEFAULT if (RUNS_DEFAULT / CONFIG).is_file() else None)
    if path is None:
        raise CheckpointError(f"no checkpoint given, none packaged and no {RUNS_DEFAULT}/; "
                              "train one with `fernb train` or pass --checkpoint DIR")
    return path


def checkpoints(given: str | Path | None = None, latest: str | Path = RUNS_DEFAULT) -> dict[str, Path]:
    """The checkpoints notebooks 04 and 05 show, the student's first: the one given; else the last run of notebook
    03 or `fernb train` (latest) when there is one, with the default (packaged) model beside it as a reference."""
    if given:
        return {f"checkpoint {given}": Path(given)}
    latest = Path(latest)
    found = {f"your run ({latest})": latest} if (latest / CONFIG).is_file() else {}
    try:
        default = default_checkpoint()
    except CheckpointError:  # nothing packaged: the run alone, if there is one
        if found:
            return found
        raise
    if default.resolve() != latest.resolve():
        found["packaged model" if default == packaged_checkpoint() else f"checkpoint {default}"] = default
    return found


def kept_epoch(meta: dict) -> tuple[float, int] | None:
    """The kept epoch's plain val accuracy and how many epochs it was chosen among (1: the last, nothing chosen);
    None where no one epoch was kept on val: no hold-out, or an ensemble (each member kept its own; the ensemble's
    val figure is with flip TTA)."""
    kept, history = meta.get("metrics", {}), meta.get("history") or [{}]
    if "members" in meta or not meta.get("n_val") or kept.get("val_acc") is None:
        return None
    return kept["val_acc"], len(history) if kept.get("epoch") != history[-1].get("epoch") else 1


def summary(meta: dict) -> str:
    """One line on a checkpoint: its model, size, training data and which epoch it kept."""
    head = meta["model"] + (f" ({meta['params']:,} parameters)" if "params" in meta else "") + \
        (f", trained on {meta['n_train']:,} faces" if "n_train" in meta else "")
    kept = meta.get("metrics", {})
    if "members" in meta:  # scripts/package_model.py joined several runs
        val = f" (val accuracy {kept['val_acc']:.4f})" if "val_acc" in kept else ""
        return f"{head}, an ensemble of {len(meta['members'])} networks{val}"
    if not meta.get("n_val"):  # a final run on all of train: no hold-out, the last epoch is kept
        return f"{head} with no val hold-out, last epoch ({kept.get('epoch')}) kept"
    return f"{head}, kept epoch {kept.get('epoch')} (val accuracy {kept.get('val_acc', float('nan')):.4f})"
