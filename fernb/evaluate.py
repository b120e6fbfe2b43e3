"""Inference: run_model (with TTA views) and predict() into one Predictions object; metrics and calibration read it."""
from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from fernb import checkpoint
from fernb.augment import to_input
from fernb.data import FERData, load
from fernb.device import autocast, cpu_bf16
from fernb.errors import DataError, FernbError
from fernb.models import for_inference

RUNS_DEFAULT = Path("runs/latest")  # where `fernb train` writes when no --out is given


def tta_views(x: torch.Tensor, tta: str | None) -> list[torch.Tensor]:
    """The views of a batch that test-time augmentation averages: the batch itself, and its mirror for 'flip'.

    Only flips: 2-pixel shifts as well (10 views) scored 71.2% on val against flips' 71.6% (README).
    """
    if tta not in (None, "flip"):
        raise FernbError(f"unknown TTA mode {tta!r}; use 'flip' or None")
    return [x] if tta is None else [x, x.flip(-1)]


@torch.no_grad()
def run_model(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 512, device=None,
              precision: str = "fp32", tta: str | None = None) -> torch.Tensor:
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


@dataclass
class Predictions:
    """Class probabilities for N faces, with their true labels and the faces themselves (for galleries)."""

    probs: torch.Tensor  # float [N, C]
    labels: torch.Tensor  # int64 [N]
    classes: tuple[str, ...]
    images: torch.Tensor  # uint8 [N, 48, 48]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def preds(self) -> torch.Tensor:
        """Predicted class index per face."""
        return self.probs.argmax(-1)

    @property
    def confidence(self) -> torch.Tensor:
        """Probability of the predicted class per face."""
        return self.probs.max(-1).values

    @property
    def accuracy(self) -> float:
        """Fraction of faces whose predicted class is the true one."""
        return (self.preds == self.labels).float().mean().item()


def packaged_checkpoint() -> Path | None:
    """The default model shipped inside the package, if this install has one."""
    path = Path(str(resources.files("fernb") / "weights" / "default"))
    return path if (path / checkpoint.WEIGHTS).is_file() else None


def default_checkpoint() -> Path:
    """The checkpoint used when none is given: $FERNB_CHECKPOINT, the packaged model, else the last `fernb train`."""
    if os.environ.get("FERNB_CHECKPOINT"):
        return Path(os.environ["FERNB_CHECKPOINT"])
    path = packaged_checkpoint() or (RUNS_DEFAULT if (RUNS_DEFAULT / checkpoint.CONFIG).is_file() else None)
    if path is None:
        raise checkpoint.CheckpointError(f"no checkpoint given, none packaged and no {RUNS_DEFAULT}/; "
                                         "train one with `fernb train` or pass --checkpoint DIR")
    return path


def checkpoints(given: str | Path | None = None) -> dict[str, Path]:
    """The checkpoints notebook 04 compares: the one given; else the default (packaged) model and, when notebook 03
    or `fernb train` has written one, the last run in runs/latest."""
    if given:
        return {f"checkpoint {given}": Path(given)}
    default = default_checkpoint()
    found = {"packaged model" if default == packaged_checkpoint() else f"checkpoint {default}": default}
    if (RUNS_DEFAULT / checkpoint.CONFIG).is_file() and RUNS_DEFAULT.resolve() != default.resolve():
        found[f"your run ({RUNS_DEFAULT})"] = RUNS_DEFAULT
    return found


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu"):
    """(model, meta) from a checkpoint directory, or from default_checkpoint() when path is None."""
    return checkpoint.load(path or default_checkpoint(), device)


def load_split(meta: dict, source: str | os.PathLike | None, split: str) -> FERData:
    """A split of source carved as the checkpoint's training run carved it, so that val never holds training faces."""
    holdout = meta.get("holdout") or {"val_fraction": 0, "seed": 0}  # no record: the model may have seen all of train
    if split == "val" and not (meta.get("n_val") and holdout["val_fraction"]):
        raise DataError(f"this {meta['model']} checkpoint was trained with no val hold-out (--val-fraction 0, or no "
                        "record of one), so there is no val split to score it on; use --split test")
    return load(source, split, **holdout)


def describe(meta: dict) -> str:
    """One line on a checkpoint: its model, size, training data and which epoch it kept."""
    head = f"{meta['model']} ({meta['params']:,} parameters), trained on {meta['n_train']:,} faces"
    if not meta.get("n_val"):  # a final run on all of train: no hold-out, the last epoch is kept
        return f"{head} with no val hold-out, last epoch ({meta['metrics'].get('epoch')}) kept"
    return f"{head}, kept epoch {meta['metrics'].get('epoch')} (val accuracy {meta['metrics']['val_acc']:.4f})"


def predict(model: torch.nn.Module, data: FERData, tta: str | None = None, batch_size: int = 128) -> Predictions:
    """Probabilities for every face of a split; tta="flip" averages each face with its mirror image.

    The fastest path measured (benchmarks/eval_speed.py): models.for_inference's copy, bf16 on CPUs that run it
    natively (accuracy within 0.02 points of fp32 for the packaged model), and batches of 128 (512 measured 8%
    slower on a 2-core CPU).
    """
    device = next(model.parameters()).device
    precision = "bf16" if device.type == "cpu" and cpu_bf16() else "fp32"
    fast = for_inference(model)
    logits = run_model(fast, data.images, batch_size=batch_size, tta=tta, precision=precision)
    return Predictions(logits.softmax(-1), data.labels.clone(), tuple(data.classes), data.images)


def metrics(pred: Predictions) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, and the confusion matrix (rows = true class)."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support
    y, p, k = pred.labels.numpy(), pred.preds.numpy(), list(range(len(pred.classes)))
    prec, rec, f1, support = precision_recall_fscore_support(y, p, labels=k, zero_division=0)
    per_class = {c: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]), "support": int(support[i])}
                 for i, c in enumerate(pred.classes)}
    return {"n": len(pred), "accuracy": float((y == p).mean()), "macro_f1": float(f1_score(y, p, labels=k, average="macro",
            zero_division=0)), "per_class": per_class, "confusion": confusion_matrix(y, p, labels=k).tolist(),
            "classes": list(pred.classes)}


def most_confused(pred: Predictions, k: int = 5) -> list[tuple[str, str, int]]:
    """The k most frequent (true, predicted, count) mistakes."""
    cm = np.array(metrics(pred)["confusion"])
    np.fill_diagonal(cm, 0)
    order = np.argsort(cm, axis=None)[::-1][:k]
    return [(pred.classes[i], pred.classes[j], int(cm[i, j])) for i, j in zip(*np.unravel_index(order, cm.shape))
            if cm[i, j] > 0]


def calibration(pred: Predictions, bins: int = 15) -> dict:
    """Reliability-diagram bins (confidence, accuracy, count) and the expected calibration error."""
    conf, right = pred.confidence.numpy(), (pred.preds == pred.labels).numpy()
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    mean_conf = np.bincount(which, conf, bins) / np.maximum(count, 1)
    mean_acc = np.bincount(which, right.astype(float), bins) / np.maximum(count, 1)
    ece = float(np.sum(count * np.abs(mean_acc - mean_conf)) / max(1, len(conf)))
    return {"edges": edges.tolist(), "confidence": mean_conf.tolist(), "accuracy": mean_acc.tolist(),
            "count": count.tolist(), "ece": ece}


def pick_per_class(pred: Predictions, seed: int = 0) -> list[int]:
    """One random (seeded) face index per true class that has any."""
    g = torch.Generator().manual_seed(seed)
    picks = []
    for k in range(len(pred.classes)):
        idx = torch.nonzero(pred.labels == k).flatten()
        if len(idx):
            picks.append(int(idx[torch.randint(len(idx), (1,), generator=g)]))
    return picks


def most_confident(pred: Predictions, k: int, n: int = 6) -> tuple[list[int], list[int]]:
    """Indices of class k's faces predicted right and wrong, each sorted by falling confidence, n at most;
    a face that repeats one already picked is skipped (FER-2013 holds the same picture more than once)."""
    order = torch.argsort(pred.confidence, descending=True)
    mine = order[pred.labels[order] == k]
    right = pred.preds[mine] == k
    return _distinct(pred, mine[right].tolist(), n), _distinct(pred, mine[~right].tolist(), n)


def _distinct(pred: Predictions, indices: list[int], n: int, min_diff: float = 10.0) -> list[int]:
    """The first n of indices whose faces differ from each other by at least min_diff grey levels on average:
    pixel-identical copies and re-encoded ones (a few levels of JPEG noise apart) count as the same picture."""
    kept: list[int] = []
    for i in indices:
        face = pred.images[i].float()
        if len(kept) < n and all((face - pred.images[j].float()).abs().mean() >= min_diff for j in kept):
            kept.append(i)
    return kept
