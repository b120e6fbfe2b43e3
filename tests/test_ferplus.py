"""FER+ labels on CSV pairs the tests write: both label modes, the rows dropped, classes mapped by name."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from fernb import ferplus
from fernb.cli import main
from fernb.data import load
from fernb.sources import USAGES, Pool
from fernb.synthetic import synthetic_faces
from tests.conftest import write_csv
from tests.test_bad_input import fails

E = ferplus.EMOTIONS  # neutral, happiness, surprise, sadness, anger, disgust, fear, contempt (the file's order)


def votes(**named) -> list[int]:
    """A row's 10 vote counts from names: votes(happiness=8, unknown=2)."""
    return [named.get(c, 0) for c in (*E, "unknown", "NF")]


# each Training face's votes, and what the paper's rules make of it: (votes, majority class or None, why)
SPECIAL = [
    (votes(sadness=9, neutral=1), "sad", "sadness is sad: mapped by name, not by column position"),
    (votes(anger=4, neutral=4, happiness=2), None, "a tie: no emotion has more than half"),
    (votes(unknown=6, happiness=4), None, "most say unknown"),
    (votes(NF=7, neutral=3), None, "most say not a face"),
    (votes(neutral=5, happiness=1, surprise=1, sadness=1, anger=1, fear=1), "neutral",
     "single votes are removed first, so 5 of the 5 left agree"),
    (votes(contempt=6, disgust=4), "contempt", "contempt is a class of its own"),
]


def write_pair(folder, n_per_class: int = 6, rows=SPECIAL, test_rows: int = 16):
    """fer2013.csv (synthetic faces) and its fer2013new.csv: every class's Training faces, the SPECIAL rows, test rows."""
    train_x, _ = synthetic_faces({"happy": 8 * n_per_class + len(rows)}, 0, 48)
    test_x, _ = synthetic_faces({"sad": test_rows}, 1, 48)
    images = np.concatenate([train_x, test_x])
    usage = np.array([0] * len(train_x) + [1, 2] * (test_rows // 2), np.uint8)
    fer = folder / "fer2013.csv"
    write_csv(Pool(images, np.zeros(len(images), np.int64), usage, "x", "csv"), fer)  # FER-2013's own labels: ignored
    table = [votes(**{E[k % 8]: 10}) for k in range(8 * n_per_class)] + [v for v, _, _ in rows]
    table += [votes(**{E[k % 8]: 8, "unknown": 2}) for k in range(test_rows)]
    new = folder / "fer2013new.csv"
    with open(new, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(ferplus.COLUMNS)
        for i, (v, u) in enumerate(zip(table, usage)):
            w.writerow([USAGES[u], f"fer{i:07d}.png" if i % 5 else "", *v])  # names wrong or empty, as in FER+
    return fer, new


@pytest.fixture
def pair(tmp_path):
    return write_pair(tmp_path)


def test_majority_labels_keep_a_clear_majority_and_drop_the_rest_as_the_paper_does(pair):
    fer, new = pair
    pool = ferplus.read_pool(fer, new, "majority")
    assert pool.classes == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise", "contempt")
    train = pool.labels[pool.usage == 0]
    base = 8 * 6
    # the plain rows: 10 votes for emotion k % 8 of the file's order, mapped by name onto ours
    want = [pool.classes.index({"happiness": "happy", "sadness": "sad", "anger": "angry"}.get(E[k % 8], E[k % 8]))
            for k in range(base)]
    assert train[:base].tolist() == want
    kept_special = [pool.classes.index(c) for _, c, _ in SPECIAL if c is not None]
    assert train[base:].tolist() == kept_special  # the tie, unknown and not-a-face rows are gone
    assert len(pool.labels) == base + len(kept_special) + 16 and pool.soft is None


def test_probability_labels_are_the_vote_distribution_in_our_class_order(pair):
    fer, new = pair
    pool = ferplus.read_pool(fer, new, "probability")
    assert pool.soft.shape == (len(pool.labels), 8) and np.allclose(pool.soft.sum(1), 1)
    test = pool.soft[pool.usage != 0]  # 8 votes for an emotion and 2 unknown: all of the emotions' share is its own
    assert np.allclose(test.max(1), 1)
    tie = ferplus.soft_labels(np.array([votes(anger=4, neutral=4, happiness=2)], float), "probability")
    dist, keep = tie
    angry, neutral, happy = (ferplus.FERPLUS_CLASSES.index(c) for c in ("angry", "neutral", "happy"))
    assert keep[0] and dist[0, angry] == dist[0, neutral] == pytest.approx(0.4) and dist[0, happy] == pytest.approx(0.2)
    assert (pool.labels == pool.soft.argmax(1)).all()


def test_a_run_learns_soft_targets_and_every_command_uses_the_eight_classes(capsys, pair, tmp_path):
    fer, new = pair
    out = tmp_path / "run"
    assert main(["train", "--data", str(fer), "--labels", str(new), "--label-mode", "probability", "--model",
                 "fernet_s", "--epochs", "1", "--batch-size", "16", "--val-fraction", "0.2", "--out", str(out),
                 "--json"]) == 0
    meta = json.loads((out / "config.json").read_text())
    assert meta["classes"][-1] == "contempt" and len(meta["classes"]) == 8
    capsys.readouterr()
    assert main(["evaluate", "--data", str(fer), "--labels", str(new), "--checkpoint", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 16
    assert main(["info", "--data", str(fer), "--labels", str(new), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["classes"][-1] == "contempt"


def test_soft_targets_reach_the_loss(pair):
    fer, new = pair
    train = load(split="train", pool=ferplus.read_pool(fer, new, "probability"), val_fraction=0.2)
    assert train.targets is not None and train.targets.shape == (len(train), 8)
    from fernb.errors import ConfigError
    from fernb.augment import AugmentConfig
    from fernb.train import TrainConfig, fit
    with pytest.raises(ConfigError, match="soft targets"):
        fit(train, None, TrainConfig(model="fernet_s", epochs=1, batch_size=16, augment=AugmentConfig(mixup=0.2)),
            progress=False)


def test_label_files_that_do_not_pair_are_one_line(capsys, pair, tmp_path):
    fer, new = pair
    lines = new.read_text().splitlines()
    short = tmp_path / "short.csv"
    short.write_text("\n".join(lines[:-3]) + "\n")
    fails(capsys, ["info", "--data", str(fer), "--labels", str(short)], "short.csv", "rows, but", "row by row")
    swapped = tmp_path / "swapped.csv"
    swapped.write_text("\n".join([lines[0], *lines[1:][::-1]]) + "\n")  # the same rows, in another order
    fails(capsys, ["info", "--data", str(fer), "--labels", str(swapped)], "swapped.csv", "not in the same order")
    fails(capsys, ["info", "--data", str(fer), "--labels", str(fer)], "fer2013.csv", "expected FER+'s")  # the other file
    fails(capsys, ["info", "--data", str(new)], "fer2013new.csv", "expected emotion,pixels,Usage")
    fails(capsys, ["info", "--data", str(tmp_path), "--labels", str(new)], "row by row", "--data fer2013.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text(lines[0] + "\n" + lines[1].rsplit(",", 1)[0] + ",-3\n" + "\n".join(lines[2:]) + "\n")
    fails(capsys, ["info", "--data", str(fer), "--labels", str(bad)], "bad.csv:2", "vote counts")
    fails(capsys, ["info", "--data", str(fer), "--labels", str(new), "--label-mode", "vote"], "invalid choice")


def test_labels_that_leave_a_class_without_training_faces_are_refused(capsys, tmp_path):
    fer, new = write_pair(tmp_path, n_per_class=0, rows=SPECIAL)  # no disgust, fear, ... among the special rows
    fails(capsys, ["info", "--data", str(fer), "--labels", str(new)], "no Training face is", "disgust")
