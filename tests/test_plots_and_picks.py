"""fernb.plots figures carry the data they are given; gallery picks and dataset oddities are right."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from fernb import plots  # noqa: E402
from fernb.data import CLASSES, Pool  # noqa: E402
from fernb.explore import find_oddities, most_confident, pick_per_class  # noqa: E402
from fernb.evaluate import Predictions, calibration, metrics  # noqa: E402


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
    assert len(figs[3].axes[1].lines) == 2  # train and val curves


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
