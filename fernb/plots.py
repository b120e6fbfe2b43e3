"""Every figure the notebooks show: each function takes plain data or Predictions and returns a Figure."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from matplotlib.figure import Figure

from fernb.data import CLASSES
from fernb.errors import DataError
from fernb.evaluate import Predictions

PALETTE = dict(zip(CLASSES, sns.color_palette("Set2", len(CLASSES))))


def _need(n: int, what: str) -> None:
    """Refuse to draw a figure of nothing, in one line naming what is missing."""
    if not n:
        raise DataError(f"nothing to plot: no {what}; check the data or predictions passed in")


def _overlay(ax, cam) -> None:
    """A Grad-CAM heat map over the face already drawn in ax."""
    ax.imshow(np.asarray(cam), cmap="jet", alpha=0.45, vmin=0, vmax=1)


def _bars(ax, classes, probs, colors, title: str, fontsize=None) -> None:
    """Class-probability bars, the first class on top."""
    ax.barh(classes, probs, color=colors)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="probability")
    ax.set_title(title, fontsize=fontsize)


def _face(ax, image, title: str = "", color=None) -> None:
    """Draw one 48x48 face without axes; None leaves the grid cell empty (a row shorter than the grid)."""
    if image is None:
        ax.axis("off")
        return
    ax.imshow(np.asarray(image), cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8, color=color or "black")


def class_counts(splits: dict[str, dict[str, int]], title: str = "Images per class") -> Figure:
    """Grouped bars of images per class for each split, with each class's share of the first split."""
    _need(len(splits) and sum(next(iter(splits.values())).values()), "images in the first split")
    classes = list(next(iter(splits.values())))
    fig, ax = plt.subplots(figsize=(9, 4), layout="constrained")
    width = 0.8 / len(splits)
    for k, (split, counts) in enumerate(splits.items()):
        ax.bar(np.arange(len(classes)) + k * width, [counts[c] for c in classes], width, label=split)
    first = next(iter(splits.values()))
    total = sum(first.values())
    for i, c in enumerate(classes):
        ax.text(i, first[c], f"{100 * first[c] / total:.1f}%", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(np.arange(len(classes)) + 0.4 - width / 2, classes)
    ax.set(xlabel="class", ylabel="images", title=title)
    ax.legend()
    return fig


def sample_grid(images: torch.Tensor, labels: torch.Tensor, classes, per_class: int = 8, seed: int = 0) -> Figure:
    """A row of random faces for every class."""
    g = torch.Generator().manual_seed(seed)
    rows = {}
    for k, c in enumerate(classes):
        idx = torch.nonzero(labels == k).flatten()
        rows[c] = images[idx[torch.randperm(len(idx), generator=g)[:per_class]]]
    return augment_rows(rows, "Random training faces per class", width=per_class)


def mean_faces(images: torch.Tensor, labels: torch.Tensor, classes) -> Figure:
    """The pixel-wise mean face of every class."""
    fig, axes = plt.subplots(1, len(classes), figsize=(len(classes) * 1.6, 2.2), layout="constrained")
    for k, c in enumerate(classes):
        _face(axes[k], images[labels == k].float().mean(0), c)
    fig.suptitle("Mean face per class")
    return fig


def pixel_stats(images: torch.Tensor, labels: torch.Tensor, classes) -> Figure:
    """Histogram of all pixel intensities, and per-image mean brightness per class."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.5), layout="constrained")
    a.hist(images[::7].flatten().numpy(), bins=64, color="grey")
    a.set(xlabel="pixel intensity", ylabel="pixels (every 7th image)", title="Pixel intensities")
    means = images.float().mean((1, 2))
    b.boxplot([means[labels == k].numpy() for k in range(len(classes))], tick_labels=list(classes), showfliers=False)
    b.set(xlabel="class", ylabel="mean brightness", title="Per-image brightness by class")
    return fig


def image_strip(images, titles=None, title: str = "") -> Figure:
    """Faces in one row, with optional titles."""
    _need(len(images), "faces")
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(n * 1.3, 1.8), squeeze=False, layout="constrained")
    for j in range(n):
        _face(axes[0, j], images[j], titles[j] if titles else "")
    if title:
        fig.suptitle(title)
    return fig


def augment_rows(rows: dict[str, torch.Tensor], title: str, width: int | None = None) -> Figure:
    """One row of faces per name (the name on the left); a row may hold fewer faces than the longest (or width)."""
    _need(sum(len(v) for v in rows.values()), "faces in any row")
    n = width or max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 1.1, len(rows) * 1.2), squeeze=False,
                             layout="constrained")
    for i, (name, imgs) in enumerate(rows.items()):
        for j in range(n):
            _face(axes[i, j], imgs[j] if j < len(imgs) else None)
        axes[i, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=10)
    fig.suptitle(title)
    return fig


def lr_schedule(progress, lrs, title: str = "Learning rate over the run") -> Figure:
    """The learning rate against the run's progress (0 = start, 1 = end)."""
    fig, ax = plt.subplots(figsize=(6, 2.8), layout="constrained")
    ax.plot(progress, lrs)
    ax.set(xlabel="progress through the run", ylabel="learning rate", title=title)
    return fig


def training_curves(history: list[dict]) -> Figure:
    """Loss and accuracy per epoch for train and val."""
    _need(len(history), "epochs in the history")
    ep = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    for key, ax in (("loss", a), ("acc", b)):
        ax.plot(ep, [r[f"train_{key}"] for r in history], "o-", label="train (augmented)")
        if "val_" + key in history[0]:
            ax.plot(ep, [r[f"val_{key}"] for r in history], "o-", label="val")
        ax.set(xlabel="epoch", ylabel=key if key == "loss" else "accuracy", title=f"{key.title()} per epoch")
        ax.legend()
    return fig


def confusion(cm, classes) -> Figure:
    """Confusion matrix in counts and row-normalised (rows = true class)."""
    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
    sns.heatmap(cm, annot=True, fmt="d", cmap="Blues", xticklabels=classes, yticklabels=classes, ax=a, cbar=False)
    sns.heatmap(norm, annot=True, fmt=".2f", cmap="Blues", xticklabels=classes, yticklabels=classes, ax=b,
                vmin=0, vmax=1)
    a.set(xlabel="predicted", ylabel="true", title="Confusion matrix (counts)")
    b.set(xlabel="predicted", ylabel="true", title="Confusion matrix (row-normalised: recall on the diagonal)")
    return fig


def per_class_f1(per_class: dict[str, dict]) -> Figure:
    """F1 per class as bars, with the class's support in the label."""
    classes = list(per_class)
    fig, ax = plt.subplots(figsize=(8, 3.5), layout="constrained")
    ax.bar(classes, [per_class[c]["f1"] for c in classes], color=[PALETTE.get(c) for c in classes])
    for i, c in enumerate(classes):
        ax.text(i, per_class[c]["f1"], f"{per_class[c]['f1']:.2f}\nn={per_class[c]['support']}", ha="center",
                va="bottom", fontsize=8)
    ax.set(xlabel="class", ylabel="F1", ylim=(0, 1.15), title="F1 per class")
    return fig


def reliability(cal: dict) -> Figure:
    """Reliability diagram: accuracy against confidence per bin, with the expected calibration error."""
    _need(sum(cal.get("count", [])), "faces in any confidence bin")
    edges = np.asarray(cal["edges"])
    centers, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    used = np.asarray(cal["count"]) > 0
    fig, ax = plt.subplots(figsize=(4.8, 4.5), layout="constrained")
    ax.bar(centers[used], np.asarray(cal["accuracy"])[used], width * 0.95, color="tab:blue",
           label="accuracy of the faces in each confidence bin")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration: accuracy = confidence")
    ax.plot(np.asarray(cal["confidence"])[used], np.asarray(cal["accuracy"])[used], "o", color="tab:orange",
            label="each bin at its mean confidence (right of\nthe dashed line: over-confident)")
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
           title=f"Reliability (ECE = {100 * cal['ece']:.1f}%)")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def view_classify(pred: Predictions, i: int, ax_img=None, ax_bar=None) -> Figure:
    """One face with its class-probability bars (the original notebook's view_classify, done well)."""
    _need(0 <= i < len(pred.labels), f"face {i} among the {len(pred.labels)} predicted")
    if ax_img is None:
        fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(6, 2.6), gridspec_kw={"width_ratios": [1, 1.6]},
                                             layout="constrained")
    true, guess = pred.classes[int(pred.labels[i])], pred.classes[int(pred.preds[i])]
    _face(ax_img, pred.images[i], f"true: {true}")
    probs = pred.probs[i].numpy()
    colors = ["tab:green" if k == int(pred.labels[i]) else ("tab:red" if k == int(pred.preds[i]) else "lightgrey")
              for k in range(len(probs))]
    _bars(ax_bar, pred.classes, probs, colors, f"predicted: {guess} ({probs.max():.0%})", fontsize=9)
    ax_bar.title.set_color("tab:green" if true == guess else "tab:red")
    ax_bar.tick_params(labelsize=8)
    return ax_img.figure


def class_probabilities(pred: Predictions, indices) -> Figure:
    """view_classify for several faces, one per row."""
    _need(len(indices), "faces chosen")
    fig, axes = plt.subplots(len(indices), 2, figsize=(6.5, 2.1 * len(indices)),
                             gridspec_kw={"width_ratios": [1, 1.8]}, squeeze=False, layout="constrained")
    for row, i in enumerate(indices):
        view_classify(pred, int(i), axes[row, 0], axes[row, 1])
    return fig


def right_and_wrong(pred: Predictions, k: int, right, wrong) -> Figure:
    """Two rows for true class k: its most confident right predictions, then its most confident wrong ones."""
    n = max(1, len(right), len(wrong))
    fig, axes = plt.subplots(2, n, figsize=(n * 1.25, 3.4), squeeze=False, layout="constrained")
    for row, (indices, name) in enumerate(((right, "right"), (wrong, "wrong"))):
        for j in range(n):
            ax = axes[row, j]
            if j >= len(indices):
                ax.axis("off")
                continue
            i = int(indices[j])
            _face(ax, pred.images[i], f"{pred.classes[int(pred.preds[i])]} {float(pred.confidence[i]):.0%}",
                  "tab:green" if row == 0 else "tab:red")
        axes[row, 0].set_ylabel(name, fontsize=9)
    fig.suptitle(f"true {pred.classes[k]}: most confident right (top) and wrong (bottom) predictions", fontsize=10)
    return fig


def saliency(images, cams, titles=None, title: str = "Grad-CAM: where the evidence was") -> Figure:
    """Faces (top row) and their Grad-CAM heat maps over them (bottom row)."""
    _need(len(images), "faces")
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(n * 1.4, 3.2), squeeze=False, layout="constrained")
    for j in range(n):
        _face(axes[0, j], images[j], titles[j] if titles else "")
        _face(axes[1, j], images[j])
        _overlay(axes[1, j], cams[j])
    fig.suptitle(title, fontsize=10)
    return fig


def emotion_timeline(rows: list[dict], classes, max_faces: int = 3) -> Figure:
    """Each face's class probabilities along a video's timeline (rows as fernb.video.analyse returns them)."""
    ids = sorted({r["face_id"] for r in rows})[:max_faces] or [None]
    fig, axes = plt.subplots(len(ids), 1, figsize=(9, 2.6 * len(ids)), squeeze=False, layout="constrained")
    for ax, face_id in zip(axes[:, 0], ids):
        mine = [r for r in rows if r["face_id"] == face_id]
        for c in classes:
            ax.plot([r["time_s"] for r in mine], [r[c] for r in mine], ".-", label=c, color=PALETTE.get(c))
        ax.set(ylim=(0, 1), ylabel="probability", title=f"face {face_id}" if mine else "no face found")
    axes[-1, 0].set_xlabel("time (s)")
    axes[0, 0].legend(ncol=len(classes), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 1.35))
    return fig


def show_image(image, title: str = "") -> Figure:
    """A photo (array or PIL image) at its aspect ratio, without axes."""
    fig, ax = plt.subplots(figsize=(6, 6), layout="constrained")
    ax.imshow(np.asarray(image), cmap="gray" if np.asarray(image).ndim == 2 else None)
    ax.axis("off")
    ax.set_title(title)
    return fig


def face_report(crops, probs, classes, cams) -> Figure:
    """For each face of a photo: the 48x48 crop, its Grad-CAM, and its class-probability bars."""
    _need(len(crops), "faces found")
    fig, axes = plt.subplots(len(crops), 3, figsize=(8, 2.3 * len(crops)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 2]}, layout="constrained")
    for i, (crop, p, cam) in enumerate(zip(crops, probs, cams)):
        p = np.asarray(p)
        _face(axes[i, 0], crop, f"face {i}: what the model sees")
        _face(axes[i, 1], crop, f"Grad-CAM for {classes[int(p.argmax())]}")
        _overlay(axes[i, 1], cam)
        _bars(axes[i, 2], classes, p, ["tab:orange" if k == p.argmax() else "lightgrey" for k in range(len(p))],
              f"{classes[int(p.argmax())]} ({p.max():.0%})")
    return fig
