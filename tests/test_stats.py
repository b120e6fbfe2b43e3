"""fernb.stats: how sure a test number is (issue 26)."""
from __future__ import annotations

import pytest
import torch

from fernb.evaluate import Predictions, metrics
from fernb.stats import mcnemar, wilson


def test_wilson_interval_of_a_test_accuracy():
    lo, hi = wilson(2491, 3589)  # 69.4% of 3,589 PublicTest faces: about +-1.5 points
    assert lo == pytest.approx(0.6788, abs=1e-4) and hi == pytest.approx(0.7089, abs=1e-4)
    lo56, hi56 = wilson(28, 56)  # a recall of 0.50 on disgust's 56 faces: about +-13 points
    assert hi56 - lo56 == pytest.approx(0.2534, abs=1e-3)
    assert wilson(0, 0) is None and wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == pytest.approx(1.0)


def test_mcnemar_counts_the_faces_only_one_predictor_gets_right():
    a = [True] * 10 + [False] * 5 + [True] * 5
    b = [False] * 10 + [False] * 5 + [True] * 5
    r = mcnemar(a, b)
    assert (r["a_only"], r["b_only"]) == (10, 0) and r["p_value"] == pytest.approx(2 * 0.5**10)
    assert mcnemar(a, a) == {"a_only": 0, "b_only": 0, "p_value": 1.0}  # the same predictions: no evidence at all


def test_metrics_carry_the_intervals():
    classes = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 0])
    pred = Predictions(torch.eye(7)[[0, 1, 2, 3, 3, 5, 6, 0]], labels, classes, torch.zeros(8, 48, 48, dtype=torch.uint8))
    m = metrics(pred)
    assert m["accuracy_ci"] == wilson(7, 8) and m["per_class"]["angry"]["recall_ci"] == wilson(2, 2)
    assert m["per_class"]["neutral"]["recall_ci"] == wilson(0, 1)


def test_the_interval_of_a_difference_is_newcombes():
    from fernb.stats import difference
    lo, hi = difference(56, 70, 48, 80)  # Newcombe (1998), table II, example (a): method 10 gives 0.0524 to 0.3339
    assert lo == pytest.approx(0.0524, abs=1e-4) and hi == pytest.approx(0.3339, abs=1e-4)
    assert difference(5, 0, 1, 2) is None
    lo, hi = difference(60, 100, 60, 100)
    assert lo < 0 < hi and lo == pytest.approx(-hi)
