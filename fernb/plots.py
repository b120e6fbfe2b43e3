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
    """Grouped bars of images per class for each split, every bar with its count; beside them each class's share
    of each split, where a rare class's val and test bars are as visible as its train bar."""
    _need(len(splits) and sum(next(iter(splits.values())).values()), "images in the first split")
    classes = list(next(iter(splits.values())))
    fig, (ax, share) = plt.subplots(1, 2, figsize=(13, 4), layout="constrained")
    width, x = 0.8 / len(splits), np.arange(len(classes))
    for k, (split, counts) in enumerate(splits.items()):
        total = max(1, sum(counts.values()))
        bars = ax.bar(x + k * width, [counts[c] for c in classes], width, label=split)
        ax.bar_label(bars, [f"{counts[c]:,}" for c in classes], fontsize=7, rotation=90, padding=2)
        share.bar(x + k * width, [100 * counts[c] / total for c in classes], width, label=split)
    for a in (ax, share):
        a.set_xticks(x + 0.4 - width / 2, classes)
        a.legend()
    ax.set(xlabel="class", ylabel="images", title=title)
    ax.margins(y=0.15)  # room for the counts above the tallest bars
    share.set(xlabel="class", ylabel="% of the split", title="Each class's share of each split")
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


BAR = "steelblue"  # one neutral colour: a hue per class would say nothing the axis labels do not
CONFUSION_VIEWS = ("counts", "recall", "precision")


def _kept(history: list[dict]) -> tuple[int, str]:
    """The epoch fit keeps and why: the best val_acc (the later of a tie, as fit's >= rule), else the last epoch."""
    if "val_acc" not in history[0]:
        return history[-1]["epoch"], "last; no val"
    best = max(r["val_acc"] for r in history)
    return [r["epoch"] for r in history if r["val_acc"] == best][-1], "best val"


def _curves(ax, history: list[dict], key: str, kept: int, why: str, train: str = "train (augmented)") -> None:
    """Train and val curves of key per epoch, with the kept epoch as a dashed line and a star on its curve."""
    ep = [r["epoch"] for r in history]
    ax.plot(ep, [r[f"train_{key}"] for r in history], "o-", ms=4, label=train)
    shown = "val_" + key if "val_" + key in history[0] else "train_" + key
    if shown.startswith("val"):
        ax.plot(ep, [r[shown] for r in history], "o-", ms=4, label="val")
    ax.axvline(kept, ls="--", color="grey", lw=1, label=f"kept epoch {kept}" + (f" ({why})" if why else ""))
    at = [r[shown] for r in history if r["epoch"] == kept]
    if at:  # a kept epoch outside the history still gets its line, only no star
        ax.plot([kept], at[:1], "*", ms=14, color="tab:red", zorder=3)
    ax.set(xlabel="epoch", ylabel="loss" if key == "loss" else "accuracy")


def training_curves(history: list[dict], kept: int | None = None, title: str | None = None) -> Figure:
    """Loss and accuracy per epoch for train and val, with the kept epoch (default: fit's pick) marked."""
    _need(len(history), "epochs in the history")
    best, why = _kept(history)
    kept, why = (best, why) if kept is None or kept == best else (kept, "")
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    for key, ax, name in (("loss", a, "Loss"), ("acc", b, "Accuracy")):
        _curves(ax, history, key, kept, why)
        ax.set_title(f"{name} per epoch")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def compare_curves(runs: dict[str, list[dict]], key: str = "acc") -> Figure:
    """Train and val curves of key ("acc" or "loss") for several runs side by side (shared y), each with its kept
    epoch and its final train-minus-val gap (points for accuracy), e.g. without and with augmentation."""
    if key not in ("acc", "loss"):
        raise ValueError(f"compare_curves: key must be 'acc' or 'loss', not {key!r}")
    _need(len(runs), "runs")
    for name, history in runs.items():
        _need(len(history), f"epochs in run {name!r}")
    fig, axes = plt.subplots(1, len(runs), figsize=(min(11, 4.6 * len(runs)), 3.8), sharey=True, squeeze=False,
                             layout="constrained")
    for ax, (name, history) in zip(axes[0], runs.items()):
        _curves(ax, history, key, *_kept(history), train="train")  # a run may have no augmentation
        last = history[-1]
        gap = last[f"train_{key}"] - last[f"val_{key}"] if "val_" + key in last else None
        said = "no val curve" if gap is None else f"{100 * gap:+.1f} points" if key == "acc" else f"{gap:+.3f}"
        # the gap goes in the panel's title: text inside the axes would cover some run's curves
        ax.set_title(f"{name}\ngap at the end: {said}" + ("" if gap is None else " (train minus val)"), fontsize=10)
        ax.legend(fontsize=8, loc="best")
        if gap is not None:  # the gap the title names, drawn at the last epoch
            ax.annotate("", (last["epoch"], last[f"val_{key}"]), (last["epoch"], last[f"train_{key}"]),
                        arrowprops=dict(arrowstyle="<->", color="black", lw=1))
    for ax in axes[0, 1:]:
        ax.set_ylabel("")  # the shared y axis is named once, on the left
    return fig


def confusion(cm, classes, views: tuple[str, ...] = CONFUSION_VIEWS) -> Figure:
    """Confusion matrix heat maps side by side (rows = true class, columns = predicted): any of counts, recall
    (row-normalised) and precision (column-normalised), in the order given."""
    cm = np.asarray(cm)
    _need(cm.size, "classes in the confusion matrix")
    if not views or set(views) - set(CONFUSION_VIEWS):
        raise ValueError(f"confusion: views must be some of {CONFUSION_VIEWS}, not {views!r}")
    # a class with no faces (row) or no predictions (column) divides by 1, not 0: it shows 0, not NaN
    shown = {"counts": (cm, "d" if cm.dtype.kind in "iu" else "g",
                        "Counts\n(rows = true class, columns = predicted)"),
             "recall": (cm / np.maximum(cm.sum(1, keepdims=True), 1), ".2f",
                        "Row-normalised: each row sums to 1\n(recall on the diagonal)"),
             "precision": (cm / np.maximum(cm.sum(0, keepdims=True), 1), ".2f",
                           "Column-normalised: each column sums to 1\n(precision on the diagonal)")}
    fig, axes = plt.subplots(1, len(views), figsize=(4.5 * len(views), 4.4), squeeze=False, layout="constrained")
    last_share = max((k for k, v in enumerate(views) if v != "counts"), default=None)
    for k, (ax, view) in enumerate(zip(axes[0], views)):
        data, fmt, title = shown[view]
        share = view != "counts"
        sns.heatmap(data, annot=True, fmt=fmt, cmap="Blues", xticklabels=classes, yticklabels=classes, ax=ax,
                    vmin=0, vmax=1 if share else None, cbar=k == last_share,
                    annot_kws={"size": 9}, cbar_kws={"label": "share", "shrink": 0.7})
        ax.set(xlabel="predicted", ylabel="true", title=title)
        ax.tick_params(axis="x", labelrotation=45)
        ax.tick_params(axis="y", labelrotation=0)
    return fig


def per_class_recall(per_class: dict[str, dict], title: str = "Recall per class, sorted (95% intervals)") -> Figure:
    """Horizontal recall bars, highest on top, with each 95% interval, precision and support; fig.order is the
    class names top to bottom."""
    _need(len(per_class), "classes")
    order = sorted(per_class, key=lambda c: per_class[c]["recall"], reverse=True)
    rec = np.array([per_class[c]["recall"] for c in order])
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(order) + 1.3), layout="constrained")
    ax.barh(range(len(order)), rec, color=BAR, height=0.65)
    for y, c in enumerate(order):
        ci = per_class[c].get("recall_ci")
        if ci is not None:
            ax.errorbar(rec[y], y, xerr=[[max(0, rec[y] - ci[0])], [max(0, ci[1] - rec[y])]], fmt="none",
                        ecolor="black", capsize=3, lw=1)
        span = f" [{ci[0]:.2f}-{ci[1]:.2f}]" if ci is not None else ""
        ax.text(max(rec[y], ci[1] if ci else 0) + 0.02, y,
                f"recall {rec[y]:.2f}{span}, precision {per_class[c]['precision']:.2f}, n={per_class[c]['support']}",
                va="center", fontsize=8)
    ax.set_yticks(range(len(order)), order)
    ax.invert_yaxis()
    # room right of 1 for the words; the axis itself is drawn from 0 to 1 only, as recall goes
    ax.set(xlim=(0, 1.5), xticks=np.linspace(0, 1, 6), xlabel="recall (95% interval)", title=title)
    ax.spines["bottom"].set_bounds(0, 1)
    ax.spines[["top", "right"]].set_visible(False)
    fig.order = order
    return fig


def per_class_f1(per_class: dict[str, dict]) -> Figure:
    """F1 per class as bars, highest first (left), with the class's support in the label; fig.order is the classes
    left to right."""
    _need(len(per_class), "classes")
    order = sorted(per_class, key=lambda c: per_class[c]["f1"], reverse=True)
    fig, ax = plt.subplots(figsize=(8, 3.5), layout="constrained")
    ax.bar(order, [per_class[c]["f1"] for c in order], color=BAR)
    for i, c in enumerate(order):
        ax.text(i, per_class[c]["f1"], f"{per_class[c]['f1']:.2f}\nn={per_class[c]['support']}", ha="center",
                va="bottom", fontsize=8)
    ax.set(xlabel="class", ylabel="F1", ylim=(0, 1.15), title="F1 per class, sorted")
    fig.order = order
    return fig


def baselines(rows: dict[str, dict[str, float]], title: str = "Baselines and the CNN") -> Figure:
    """Grouped horizontal bars of each method's val and test accuracy, ascending val accuracy from the top, so the
    best method (the CNN) is the bottom group; fig.order is the methods top to bottom."""
    splits = [s for s in ("val", "test") if any(s in r for r in rows.values())]
    _need(len(splits), "val or test accuracy of any method")
    order = sorted(rows, key=lambda m: rows[m].get("val", rows[m].get("test", 0.0)))
    height = 0.8 / len(splits)
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(order) * len(splits) + 1.4), layout="constrained")
    for k, (split, color) in enumerate(zip(splits, ("lightsteelblue", "steelblue"))):
        ys = [y + (k - (len(splits) - 1) / 2) * height for y, m in enumerate(order) if split in rows[m]]
        accs = [rows[m][split] for m in order if split in rows[m]]
        ax.barh(ys, accs, height, color=color, label=split)
        for y, acc in zip(ys, accs):
            ax.text(acc + 0.01, y, f"{100 * acc:.1f}%", va="center", fontsize=8)
    ax.set_yticks(range(len(order)), order)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="accuracy", title=title)
    ax.legend(loc="upper right", fontsize=8)  # the weakest method is on top: room on its right
    fig.order = order
    return fig


def reliability(cal: dict) -> Figure:
    """Reliability diagram: accuracy against confidence per bin, with the expected calibration error, and below it
    how many faces fall in each bin."""
    _need(sum(cal.get("count", [])), "faces in any confidence bin")
    edges, count = np.asarray(cal["edges"]), np.asarray(cal["count"])
    centers, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    used = count > 0
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(4.8, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]},
                                   layout="constrained")
    ax.bar(centers[used], np.asarray(cal["accuracy"])[used], width * 0.95, color="tab:blue",
           label="accuracy of the faces in each confidence bin")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration: accuracy = confidence")
    ax.plot(np.asarray(cal["confidence"])[used], np.asarray(cal["accuracy"])[used], "o", color="tab:orange",
            label="each bin at its mean confidence (right of\nthe dashed line: over-confident)")
    ax.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title=f"Reliability (ECE = {100 * cal['ece']:.1f}%)")
    ax.legend(loc="upper left", fontsize=8)
    # a bin's bar above says little when it holds few faces: the counts say which bins carry the ECE
    hist.bar(centers, count, width * 0.95, color="grey")
    share = count / count.sum()
    for x, n, s in zip(centers[used], count[used], share[used]):
        if s >= 0.01:
            hist.text(x, n, f"{100 * s:.0f}%", ha="center", va="bottom", fontsize=7)
    hist.set(xlabel="confidence", ylabel="faces", ylim=(0, count.max() * 1.3))
    hist.set_title("faces per confidence bin (share of all)", fontsize=9)
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
