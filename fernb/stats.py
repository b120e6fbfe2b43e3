"""How sure a test number is: 95% intervals of accuracies and recalls and of the difference of two, and a paired
test of two predictors on the same faces, all from scipy's exact binomial test."""
from __future__ import annotations

import numpy as np
from scipy.stats import binomtest


def wilson(k: int, n: int, level: float = 0.95) -> list[float] | None:
    """The Wilson score interval [low, high] of a proportion k / n, such as a test accuracy or a class's recall;
    None when there is nothing to count (n = 0)."""
    if n == 0:
        return None
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return [float(ci.low), float(ci.high)]


def difference(k1: int, n1: int, k2: int, n2: int, level: float = 0.95) -> list[float] | None:
    """The interval [low, high] of k1/n1 - k2/n2 for two independent sets (say test and val accuracy), Newcombe's
    hybrid score interval built from the two Wilson intervals (by hand: scipy has none; it is two lines)."""
    a, b = wilson(k1, n1, level), wilson(k2, n2, level)
    if a is None or b is None:
        return None
    p1, p2 = k1 / n1, k2 / n2
    return [p1 - p2 - ((p1 - a[0]) ** 2 + (b[1] - p2) ** 2) ** 0.5, p1 - p2 + ((a[1] - p1) ** 2 + (p2 - b[0]) ** 2) ** 0.5]


def mcnemar(right_a, right_b) -> dict:
    """The exact McNemar test of two predictors on the same faces: among the faces only one of them gets right,
    is the split more uneven than a fair coin would make it? Returns both counts and the two-sided p-value."""
    right_a, right_b = np.asarray(right_a, bool), np.asarray(right_b, bool)
    a_only, b_only = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    p = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    return {"a_only": a_only, "b_only": b_only, "p_value": float(p)}
