"""Inference and its scores: a Predictor runs a model fast, predict() gives the Predictions that metrics,
calibration and the plots read."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from fernb.augment import to_input
from fernb.data import FERData, load
from fernb.device import autocast, cpu_bf16
from fernb.errors import CheckpointError, DataError
from fernb.fast import for_inference
from fernb.stats import wilson


def tta_views(x: torch.Tensor, tta: bool) -> list[torch.Tensor]:
    """The views of a batch that test-time augmentation averages: the batch, and with tta its mirror image
    (flips only: shifted views scored lower on val, README)."""
    return [x, x.flip(-1)] if tta else [x]


@torch.no_grad()
def run_model(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 512, device=None,
              precision: str = "fp32", tta: bool = False) -> torch.Tensor:
    """Logits [N, C] (float32, on the CPU) for uint8 images [N, 48, 48], averaged over the TTA views."""
    device = device or next(model.parameters()).device
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        with autocast(device, precision):
            views = tta_views(to_input(images[i:i + batch_size].to(device)), tta)
            out.append((sum(model(v).float() for v in views) / len(views)).cpu())
    return torch.cat(out) if out else torch.empty(0, 0)


class Predictor:
    """A model made ready for fast inference once, for every caller (evaluation, photos, video, the demo): the
    for_inference copy, bf16 where this CPU runs it natively (fp32 elsewhere), and batches of 128, the size
    benchmarks/eval_speed.py measured fastest."""

    def __init__(self, model: torch.nn.Module, classes, batch_size: int = 128):
        self.device = next(model.parameters()).device
        self.model = for_inference(model)
        self.precision = "bf16" if self.device.type == "cpu" and cpu_bf16() else "fp32"
        self.classes, self.batch_size = tuple(classes), batch_size

    def probs(self, images: torch.Tensor, tta: bool = True) -> torch.Tensor:
        """Class probabilities [N, C] for uint8 faces [N, 48, 48]; tta averages each face with its mirror image."""
        if not len(images):
            return torch.empty(0, len(self.classes))
        logits = run_model(self.model, images, self.batch_size, precision=self.precision, tta=tta)
        if logits.shape[1] != len(self.classes):
            raise CheckpointError(f"the model gives {logits.shape[1]} outputs for {len(self.classes)} classes "
                                  f"({', '.join(self.classes)}); its checkpoint's config.json is not its own")
        return logits.softmax(-1)


def as_predictor(model: torch.nn.Module | Predictor, classes) -> Predictor:
    """model when it is a Predictor already, else one made from it, with the classes the model carries (a loaded
    checkpoint's, or fit's), else those given: callers that classify often make it once."""
    if isinstance(model, Predictor):
        return model
    return Predictor(model, getattr(model, "classes", None) or classes)


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


def predict(model: torch.nn.Module | Predictor, data: FERData, tta: bool = False) -> Predictions:
    """Probabilities for every face of a split, through a Predictor; tta averages each face with its mirror image.
    The labels are mapped onto the model's classes by name, never by position, so a model whose classes come in
    another order scores right, and data with fewer classes than the model is scored on those it has."""
    predictor = as_predictor(model, data.classes)
    missing = [c for c in data.classes if c not in predictor.classes]
    if missing:
        raise DataError(f"{data.source}: class(es) {', '.join(missing)} are not among the model's classes "
                        f"({', '.join(predictor.classes)}); leave them out (--skip-unknown), or train a model that has them")
    to_model = torch.tensor([predictor.classes.index(c) for c in data.classes], dtype=torch.long)
    labels = to_model[data.labels] if len(data.labels) else data.labels.clone()
    return Predictions(predictor.probs(data.images, tta), labels, predictor.classes, data.images)


def load_split(meta: dict, source: str | os.PathLike | None, split: str, pool=None) -> FERData:
    """A split of source carved as the checkpoint's training run carved it, so that val never holds training faces."""
    holdout = meta.get("holdout") or {"val_fraction": 0, "seed": 0}  # no record: the model may have seen all of train
    if split == "val" and not (meta.get("n_val") and holdout["val_fraction"]):
        raise DataError(f"this {meta['model']} checkpoint was trained with no val hold-out (--val-fraction 0, or no "
                        "record of one), so there is no val split to score it on; use --split test")
    data = load(source, split, **holdout, pool=pool)
    if split in ("train", "val") and meta.get("train_key"):  # else val could hold faces the model trained on
        train = data if split == "train" else load(source, "train", **holdout, pool=pool)
        if train.fingerprint() != meta["train_key"]:
            raise DataError(f"{data.source}: not the data this {meta['model']} checkpoint was trained on, so its "
                            f"{split} split is not the one it was carved from; score --split test, or pass the "
                            "run's own --data")
    return data


def metrics(pred: Predictions) -> dict:
    """Accuracy with its 95% interval, macro-F1 and per-class precision/recall (with its interval)/F1/support over
    the classes the faces have, and the confusion matrix over all the model's classes (rows = true class)."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support
    y, p, k = pred.labels.numpy(), pred.preds.numpy(), list(range(len(pred.classes)))
    present = [i for i in k if (y == i).any()] or k
    prec, rec, f1, support = precision_recall_fscore_support(y, p, labels=k, zero_division=0)
    hits = np.bincount(y[y == p], minlength=len(k))
    per_class = {pred.classes[i]: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                                   "recall_ci": wilson(hits[i], support[i]), "support": int(support[i])} for i in present}
    return {"n": len(pred), "accuracy": float((y == p).mean()), "accuracy_ci": wilson(hits.sum(), len(y)),
            "macro_f1": float(f1_score(y, p, labels=present, average="macro", zero_division=0)), "per_class": per_class,
            "confusion": confusion_matrix(y, p, labels=k).tolist(), "classes": list(pred.classes)}


def most_confused(pred: Predictions, k: int = 5, by: str = "count") -> list[tuple[str, str, float]]:
    """The k largest (true, predicted, size) mistakes, by count (how many faces) or by rate (the share of the true
    class's faces that went to that prediction: a rare class's big errors are small counts)."""
    n = len(pred.classes)
    cm = np.bincount(pred.labels.numpy() * n + pred.preds.numpy(), minlength=n * n).reshape(n, n).astype(float)
    if by == "rate":
        cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    np.fill_diagonal(cm, 0)
    order = np.argsort(cm, axis=None, kind="stable")[::-1][:k]
    cast = int if by == "count" else float
    return [(pred.classes[i], pred.classes[j], cast(cm[i, j])) for i, j in zip(*np.unravel_index(order, cm.shape))
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
