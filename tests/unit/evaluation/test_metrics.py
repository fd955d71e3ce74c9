"""Ranking metrics of the evaluation (nDCG, average precision, recall)."""

from __future__ import annotations

import math

import pytest

from myaiserv.evaluation import metrics


def test_ranking_metrics():
    judged = {"a": 1, "b": 1, "c": 1}
    assert metrics.ndcg(["a", "b", "c"], judged) == pytest.approx(1.0)
    ideal = 1 + 1 / math.log2(3) + 0.5
    assert metrics.ndcg(["x", "a"], judged) == pytest.approx((1 / math.log2(3)) / ideal)
    assert metrics.average_precision(["a", "x", "b"], judged) == pytest.approx((1 + 2 / 3) / 3)
    assert metrics.recall(["a", "x"], judged, 100) == pytest.approx(1 / 3)
    assert metrics.ndcg([], {}) == 0.0
