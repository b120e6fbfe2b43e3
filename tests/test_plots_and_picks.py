"""fernb.plots figures carry the data they are given; gallery picks and dataset oddities are right."""
from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from fernb import plots  # noqa: E402
from fernb.data import CLASSES, Pool  # noqa: E402
from fernb.errors import DataError  # noqa: E402
from fernb.explore import find_oddities, most_confident, pick_per_class  # noqa: E402
from fernb.evaluate import Predictions, calibration, metrics  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    """Every figure a test draws is closed after it, so none piles up across the run."""
    yield
    plt.close("all")


@pytest.fixture
def pred():
    """Fourteen faces, two per class; the second face of each class is predicted as the next class."""
    labels = torch.arange(7).repeat_interleave(2)
    guess = labels.clone()
    guess[1::2] = (labels[1::2] + 1) % 7
    probs = torch.full((14, 7), 0.05)
    probs[torch.arange(14), guess] = torch.linspace(0.5, 0.7, 14)
    images = torch.randint(0, 255, (14, 48, 48), dtype=torch.uint8)
    return Predictions(probs / probs.sum(1, keepdim=True), labels, CLASSES, images)


def test_confusion_figure_shows_the_counts(pred):
    m = metrics(pred)
    fig = plots.confusion(m["confusion"], CLASSES)
    counts = [t.get_text() for t in fig.axes[0].texts]
    assert counts.count("1") == 14 and len(counts) == 49
    assert fig.axes[0].get_ylabel() == "true" and fig.axes[0].get_xlabel() == "predicted"


def test_every_figure_has_titles(pred):
    m = metrics(pred)
    hist = [dict(epoch=e, train_loss=1 / e, train_acc=0.5, val_loss=1 / e, val_acc=0.6) for e in (1, 2, 3)]
    figs = [plots.class_counts({"train": {c: 10 for c in CLASSES}}), plots.per_class_f1(m["per_class"]),
            plots.reliability(calibration(pred)), plots.training_curves(hist),
            plots.class_probabilities(pred, [0, 1]), plots.right_and_wrong(pred, 3, [6], [7]),
            plots.mean_faces(pred.images, pred.labels, CLASSES), plots.pixel_stats(pred.images, pred.labels, CLASSES)]
    for fig in figs:
        titled = [ax for ax in fig.axes if ax.get_title()] or ([fig] if fig._suptitle else [])
        assert titled, fig
    named = [line.get_label() for line in figs[3].axes[1].lines if not line.get_label().startswith("_")]
    assert named == ["train (augmented)", "val", "kept epoch 3 (best val)"]  # the two curves and the kept epoch


def test_picks(pred):
    picks = pick_per_class(pred, seed=0)
    assert [int(pred.labels[i]) for i in picks] == list(range(7))
    right, wrong = most_confident(pred, 3, 5)
    assert right == [6] and wrong == [7]
    assert all(int(pred.preds[i]) == 3 for i in right) and all(int(pred.preds[i]) != 3 for i in wrong)


def test_find_oddities():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (6, 48, 48), dtype=np.uint8)
    images[1] = 128  # blank
    images[4] = images[0]  # duplicate, crossing from train to test, with another label
    pool = Pool(images, np.array([0, 1, 2, 3, 5, 5]), np.array([0, 0, 0, 1, 1, 1], np.uint8), "x", "synthetic")
    odd = find_oddities(pool)
    assert odd["blank"].tolist() == [1]
    assert [g.tolist() for g in odd["duplicate_groups"]] == [[0, 4]]
    assert odd["cross_split"] == 1 and odd["conflicting_labels"] == 1


def test_galleries_skip_duplicate_faces(pred):
    pred.images[6] = pred.images[4]  # face 6 (happy, right) now repeats face 4's pixels
    pred.labels[4], pred.probs[4] = 3, pred.probs[6] + 0.01  # ... and face 4 is a more confident right 'happy'
    right, _ = most_confident(pred, 3, 5)
    assert right == [4]  # face 6 is the same picture again, so it is left out


def test_conflicting_groups_and_titles():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (4, 48, 48), dtype=np.uint8)
    images[3] = images[0]
    pool = Pool(images, np.array([3, 1, 2, 5]), np.array([0, 0, 0, 1], np.uint8), "x", "synthetic")
    odd = find_oddities(pool)
    assert [g.tolist() for g in odd["conflicting_groups"]] == [[0, 3]]
    from fernb.explore import face_titles
    assert face_titles(pool, [0, 3]) == ["train\nhappy", "public test\nsad"]


def test_pick_faces_skips_blank_ones():
    from fernb.explore import pick_faces
    images = torch.zeros(10, 48, 48, dtype=torch.uint8)
    images[[2, 7]] = torch.randint(0, 255, (2, 48, 48), dtype=torch.uint8)
    assert sorted(pick_faces(images, 5)) == [2, 7]


def test_augmentation_rows_show_each_deterministic_view_once():
    from fernb.augment import DEFAULT
    from fernb.explore import preview_rows
    rows = preview_rows(torch.randint(0, 255, (48, 48), dtype=torch.uint8), n=6)
    assert len(rows["original"]) == 1 and len(rows["flip (p=1)"]) == 1 and len(rows["degrees"]) == 6
    assert torch.equal(rows["flip (p=1)"][0], rows["original"][0].flip(-1))
    fig = plots.augment_rows(rows, "a title from the caller")
    assert fig._suptitle.get_text() == "a title from the caller"
    assert sum(not ax.axison for ax in fig.axes) == 2 * 5  # the empty cells beside the two single faces


def test_mixup_preview_titles_its_two_classes():
    from fernb.augment import AugmentConfig
    from fernb.explore import preview_mix
    images, labels = torch.randint(0, 255, (6, 48, 48), dtype=torch.uint8), torch.arange(6)
    shares = []
    for seed in range(4):  # a draw may land near 0 or 1 (a face almost unmixed): look at a few
        mixed, titles = preview_mix(images, labels, CLASSES, AugmentConfig(mixup=1.0), seed)
        assert mixed.shape == (6, 48, 48) and mixed.dtype == torch.uint8 and len(titles) == 6
        shares += [int(t.split()[1].rstrip("%")) + int(t.split()[3].rstrip("%")) for t in titles if "\n" in t]
    assert shares and all(99 <= s <= 101 for s in shares)


def test_layer_table_follows_the_face_through_the_model():
    from fernb.explore import layer_table
    from fernb.models import count_parameters, create_model
    model = create_model("fernet_s")
    table = layer_table(model)
    assert table["output shape"].iloc[0] == (16, 48, 48) and table["output shape"].iloc[-1] == (7,)
    assert table["parameters"].sum() == count_parameters(model)


def test_a_claim_is_the_branch_its_numbers_support():
    from fernb.notebook import ClaimError, claim
    accs = {"happy": 0.87, "disgust": 0.50}
    best = max(accs, key=accs.get)
    assert claim(accs[best] > 0.8, f"{best} is recognised best", "no class passes 80%") == "happy is recognised best"
    assert claim(accs["disgust"] > 0.8, "disgust passes 80%", "disgust stays below 80%") == "disgust stays below 80%"
    assert claim(sorted(accs.values()) == [0.50, 0.87], "sorted") == "sorted"
    with pytest.raises(ClaimError, match="no longer support"):
        claim(accs["disgust"] > accs["happy"], "disgust beats happy")  # no other branch: the notebook stops


def test_points_is_the_difference_a_reader_computes_from_the_printed_shares():
    from fernb.notebook import points
    assert f"{0.6124:.1%} {0.6077:.1%}" == "61.2% 60.8%" and points(0.6124, 0.6077) == 0.4  # unrounded: 0.47
    assert points(0.6077, 0.6214) == -1.3 and points(0.5, 0.5) == 0.0  # 60.8% - 62.1%, not -1.37 rounded to -1.4


# four classes, one without an interval (no faces to count), recall and F1 in different orders
PER_CLASS = {"angry": dict(recall=0.50, recall_ci=[0.37, 0.63], precision=0.82, f1=0.62, support=56),
             "happy": dict(recall=0.90, recall_ci=[0.85, 0.93], precision=0.40, f1=0.55, support=200),
             "fear": dict(recall=0.30, recall_ci=None, precision=0.90, f1=0.45, support=0),
             "sad": dict(recall=0.70, recall_ci=[0.60, 0.78], precision=0.70, f1=0.70, support=90)}


def history(val_acc, train_acc=None):
    """Epoch rows as fit records them, one per val accuracy given."""
    train_acc = train_acc or [0.3 + 0.1 * e for e in range(len(val_acc))]
    return [dict(epoch=e + 1, train_loss=1.0 / (e + 1), train_acc=t, val_loss=1.0 - v, val_acc=v)
            for e, (t, v) in enumerate(zip(train_acc, val_acc))]


def test_recall_bars_are_sorted_with_their_intervals():
    fig = plots.per_class_recall(PER_CLASS)
    assert fig.order == ["happy", "sad", "angry", "fear"]
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == fig.order  # top to bottom
    assert [p.get_width() for p in ax.patches] == [PER_CLASS[c]["recall"] for c in fig.order]
    drawn = {fig.order[round(seg[0][1])]: [seg[0][0], seg[1][0]] for c in ax.collections for seg in c.get_segments()}
    want = {c: v["recall_ci"] for c, v in PER_CLASS.items() if v["recall_ci"]}  # fear: none
    assert drawn.keys() == want.keys()
    assert all(drawn[c] == pytest.approx(want[c]) for c in want)  # approx takes no nested dicts on newer pytest
    texts = [t.get_text() for t in ax.texts]
    assert "recall 0.50 [0.37-0.63], precision 0.82, n=56" in texts and "recall 0.30, precision 0.90, n=0" in texts
    assert ax.get_xlabel() == "recall (95% interval)"
    assert len({p.get_facecolor() for p in ax.patches}) == 1  # one neutral colour


def test_f1_bars_are_sorted():
    fig = plots.per_class_f1(PER_CLASS)
    assert fig.order == ["sad", "angry", "happy", "fear"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == fig.order  # left to right
    assert "sorted" in fig.axes[0].get_title()


def test_confusion_views_normalise_rows_and_columns_and_a_zero_row_is_zero():
    cm = np.array([[5, 0, 1], [0, 0, 0], [2, 0, 3]])  # class b: no faces (row) and never predicted (column)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a 0 / 0 would warn
        fig = plots.confusion(cm, ["a", "b", "c"])
    counts, rec, prec = (np.asarray(ax.collections[0].get_array(), float).reshape(3, 3) for ax in fig.axes[:3])
    assert np.array_equal(counts, cm)
    assert np.isfinite(rec).all() and np.isfinite(prec).all()
    assert rec.sum(1) == pytest.approx([1, 0, 1]) and prec.sum(0) == pytest.approx([1, 0, 1])
    assert np.diag(rec) == pytest.approx([5 / 6, 0, 3 / 5]) and np.diag(prec) == pytest.approx([5 / 7, 0, 3 / 4])
    assert "recall on the diagonal" in fig.axes[1].get_title()
    assert "precision on the diagonal" in fig.axes[2].get_title()
    for ax in fig.axes[:3]:
        assert (ax.get_ylabel(), ax.get_xlabel()) == ("true", "predicted")
        ticks = [[t.get_text() for t in labels] for labels in (ax.get_xticklabels(), ax.get_yticklabels())]
        assert ticks == [list("abc")] * 2
    one = plots.confusion(cm, ["a", "b", "c"], views=("precision",))
    assert [ax.get_xlabel() for ax in one.axes].count("predicted") == 1


def test_training_curves_mark_the_best_val_epoch():
    fig = plots.training_curves(history([0.4, 0.5, 0.6, 0.55, 0.6, 0.58]), title="a run")
    assert [ax.get_title() for ax in fig.axes] == ["Loss per epoch", "Accuracy per epoch"]
    assert fig._suptitle.get_text() == "a run"
    for ax in fig.axes:
        kept = [line for line in ax.lines if line.get_label().startswith("kept")]
        assert [line.get_label() for line in kept] == ["kept epoch 5 (best val)"]  # a tie keeps the later, as fit
        assert set(kept[0].get_xdata()) == {5}
        assert [list(line.get_xdata()) for line in ax.lines if line.get_marker() == "*"] == [[5]]
    chosen = plots.training_curves(history([0.4, 0.5, 0.6]), kept=2)
    assert "kept epoch 2" in [line.get_label() for line in chosen.axes[1].lines]  # the caller's pick: no '(best val)'
    assert not [line for line in chosen.axes[1].lines if "best val" in line.get_label()]
    no_val = [{k: v for k, v in row.items() if not k.startswith("val")} for row in history([0.4, 0.6, 0.5])]
    last = plots.training_curves(no_val)
    assert "kept epoch 3 (last; no val)" in [line.get_label() for line in last.axes[0].lines]


def test_compare_curves_has_a_panel_per_run_with_its_gap():
    runs = {"no augmentation": history([0.40, 0.50, 0.48], [0.50, 0.80, 0.95]),
            "augmentation": history([0.40, 0.52, 0.60], [0.40, 0.55, 0.62])}
    fig = plots.compare_curves(runs)
    a, b = fig.axes
    assert a.get_shared_y_axes().joined(a, b)
    assert a.get_title() == "no augmentation\ngap at the end: +47.0 points (train minus val)"
    assert b.get_title() == "augmentation\ngap at the end: +2.0 points (train minus val)"
    assert [line.get_label() for line in a.lines if line.get_label().startswith("kept")] == ["kept epoch 2 (best val)"]
    loss = plots.compare_curves(runs, "loss")
    assert "gap at the end: -0.187 (train minus val)" in loss.axes[0].get_title()  # 1/3 - (1 - 0.48)
    with pytest.raises(ValueError, match="'acc' or 'loss'"):
        plots.compare_curves(runs, "f1")


def test_baselines_are_drawn_weakest_on_top():
    rows = {"FERNet": {"val": 0.70, "test": 0.712}, "always happy": {"val": 0.25, "test": 0.245},
            "HOG + logistic regression": {"val": 0.45}, "logistic regression on pixels": {"val": 0.37, "test": 0.37}}
    fig = plots.baselines(rows)
    assert fig.order == ["always happy", "logistic regression on pixels", "HOG + logistic regression", "FERNet"]
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == fig.order
    assert len(ax.patches) == 7  # HOG has no test accuracy: no bar, not a bar at 0
    assert {"70.0%", "71.2%", "24.5%"} <= {t.get_text() for t in ax.texts}
    assert ax.get_xlim() == (0, 1) and ax.get_xlabel() == "accuracy"


def test_reliability_shows_the_faces_per_bin(pred):
    cal = calibration(pred)
    fig = plots.reliability(cal)
    assert "ECE" in fig.axes[0].get_title()
    assert [p.get_height() for p in fig.axes[1].patches] == cal["count"]


@pytest.mark.parametrize("draw", [lambda: plots.per_class_recall({}), lambda: plots.per_class_f1({}),
                                  lambda: plots.confusion(np.zeros((0, 0), int), []),
                                  lambda: plots.training_curves([]), lambda: plots.compare_curves({}),
                                  lambda: plots.compare_curves({"a run": []}), lambda: plots.baselines({}),
                                  lambda: plots.baselines({"always happy": {}})])
def test_new_plots_given_nothing_say_so(draw):
    with pytest.raises(DataError, match="^nothing to plot"):
        draw()
