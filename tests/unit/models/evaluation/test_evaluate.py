"""Metric arithmetic and routing policies against hand-computed cases; report plumbing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.evaluation.evaluate import (
    ComputeTimes,
    Predictions,
    differences_report,
    f1_bootstrap,
    f1_curve,
    format_table,
    plot_curve,
    policy_metrics,
)
from models.evaluation.metrics import (
    best_clip_threshold,
    best_window_threshold,
    clip_f1_at,
    clip_f1_bootstrap,
    clip_level,
    confidence_policy,
    dmd_policy,
    oracle_policy,
    prf,
    roc_auc,
    top_k_mask,
)


def test_prf_hand_computed() -> None:
    # tp=2 (idx 0,1), fp=1 (idx 2), fn=1 (idx 3), tn=1
    pred = np.array([1, 1, 1, 0, 0])
    truth = np.array([1, 1, 0, 1, 0])
    p, r, f = prf(pred, truth)
    assert p == pytest.approx(2 / 3) and r == pytest.approx(2 / 3) and f == pytest.approx(2 / 3)
    assert prf(np.array([1, 0]), np.array([1, 1])) == pytest.approx((1.0, 0.5, 2 / 3))


def test_prf_zero_division_conventions() -> None:
    assert prf(np.zeros(3), np.array([1, 0, 0])) == (0.0, 0.0, 0.0)  # nothing predicted
    assert prf(np.array([1, 0, 0]), np.zeros(3)) == (0.0, 0.0, 0.0)  # no positives
    assert prf(np.zeros(2), np.zeros(2)) == (0.0, 0.0, 0.0)


def test_clip_is_a_fall_when_any_window_says_fall() -> None:
    decisions = np.array([0, 1, 0, 0, 0, 0, 1])
    clip = np.array([5, 5, 7, 7, 7, 9, 9])
    clip_label = np.array([1, 1, 1, 1, 1, 0, 0])
    pred, truth = clip_level(decisions, clip, clip_label)
    assert pred.tolist() == [True, False, True]  # clips 5, 7, 9
    assert truth.tolist() == [True, True, False]
    # clip F1: tp=1 (5), fn=1 (7), fp=1 (9) → P=R=F=0.5
    assert prf(pred, truth) == pytest.approx((0.5, 0.5, 0.5))


def test_one_false_positive_window_spoils_a_no_fall_clip() -> None:
    clip = np.array([0, 0, 0, 1, 1, 1])
    clip_label = np.array([1, 1, 1, 0, 0, 0])
    p = np.array([0.1, 0.9, 0.2, 0.1, 0.6, 0.1])
    assert clip_f1_at(p, clip, clip_label, 0.5) == pytest.approx(2 / 3)  # P=1/2, R=1
    assert clip_f1_at(p, clip, clip_label, 0.7) == pytest.approx(1.0)


def test_best_clip_threshold_sits_in_the_widest_best_gap() -> None:
    clip = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    clip_label = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    p = np.array([0.2, 0.9, 0.1, 0.7, 0.3, 0.4, 0.05, 0.1])  # clip maxima: .9 .7 .4 .1
    t = best_clip_threshold(p, clip, clip_label)
    assert 0.4 < t <= 0.7 and t == pytest.approx(0.55)
    assert clip_f1_at(p, clip, clip_label, t) == 1.0
    assert best_clip_threshold(p, clip, np.zeros(8)) == 0.5  # one class only


def test_roc_auc_hand_computed() -> None:
    # positives 0.35, 0.8 vs negatives 0.1, 0.4: 3 of 4 pairs ordered right
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert roc_auc(np.array([0.5, 0.5]), np.array([1, 0])) == pytest.approx(0.5)  # tie = half
    assert roc_auc(np.array([0.2, 0.9, 0.9]), np.array([0, 1, 0])) == pytest.approx(0.75)
    assert roc_auc(np.array([0.3, 0.1]), np.array([1, 1])) == 0.5  # one class


def test_best_window_threshold_minimises_wrong_windows() -> None:
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.8, 0.9])
    y = np.array([0, 0, 1, 0, 1, 1])
    # t in (0.2, 0.3]: one error (0.6); (0.3, 0.6]: two; (0.6, 0.8]: one (0.3 missed)
    t = best_window_threshold(p, y)
    assert int(np.sum((p >= t) != (y == 1))) == 1
    assert t == pytest.approx(0.7)  # middle of the wider of the two best gaps
    assert best_window_threshold(np.array([0.4, 0.8]), np.array([0, 1])) == pytest.approx(0.6)


def test_top_k_mask_ties_break_by_position() -> None:
    v = np.array([0.5, 0.1, 0.5, 0.9, 0.1])
    assert top_k_mask(v, 2, largest=True).tolist() == [True, False, False, True, False]
    assert top_k_mask(v, 1, largest=False).tolist() == [False, True, False, False, False]
    assert top_k_mask(v, 9, largest=True).all() and not top_k_mask(v, 0, largest=True).any()


def test_policies_route_hand_computed_windows() -> None:
    edge = np.array([1, 0, 0, 1, 0])
    cloud = np.array([1, 1, 0, 0, 0])
    y = np.array([1, 1, 0, 0, 0])
    conf = np.array([0.9, 0.55, 0.8, 0.6, 0.99])
    c = confidence_policy(edge, cloud, conf, 0.4)  # 2 lowest confidences: idx 1 and 3
    assert c.offload.tolist() == [False, True, False, True, False]
    assert c.final.tolist() == [True, True, False, False, False]
    assert c.offload_rate == pytest.approx(0.4)
    score = np.array([0.1, 0.8, 0.3, 0.2, 0.05])
    d = dmd_policy(edge, cloud, score, threshold=0.25)  # idx 1, 2
    assert d.offload.tolist() == [False, True, True, False, False]
    assert d.final.tolist() == [True, True, False, True, False]
    assert dmd_policy(edge, cloud, score, rate=0.2).offload.tolist() == [
        False,
        True,
        False,
        False,
        False,
    ]
    o = oracle_policy(edge, cloud, y)  # edge wrong on idx 1 and 3
    assert o.offload.tolist() == [False, True, False, True, False]
    assert o.final.tolist() == [True, True, False, False, False]  # the cloud's answers there
    assert oracle_policy(edge, np.zeros(5, int), y).final.tolist() == [
        True,
        False,
        False,
        False,
        False,
    ]
    with pytest.raises(ValueError):
        dmd_policy(edge, cloud, score)


def _predictions() -> Predictions:
    # 3 clips: clip 0 fall (windows 0-1), clip 1 no-fall (2-3), clip 2 fall (4-5)
    edge_p = np.array([0.9, 0.2, 0.6, 0.1, 0.3, 0.45])  # edge: fall, -, FALL(fp), -, -, -
    cloud_p = np.array([0.8, 0.3, 0.2, 0.1, 0.7, 0.2])  # cloud: fall, -, -, -, fall, -
    return Predictions(
        edge_probs=np.stack([1 - edge_p, edge_p], 1),
        cloud_probs=np.stack([1 - cloud_p, cloud_p], 1),
        switcher_score=np.array([0.1, 0.2, 0.9, 0.1, 0.8, 0.3]),
        y=np.array([1, 0, 0, 0, 1, 0]),
        clip=np.array([0, 0, 1, 1, 2, 2]),
        clip_label=np.array([1, 1, 0, 0, 1, 1]),
    )


def test_policy_metrics_and_costs_hand_computed() -> None:
    pred = _predictions()
    times = ComputeTimes(edge_ms=1.0, switcher_ms=0.5, cloud_ms=10.0, sample_windows=6)
    table = policy_metrics(pred, times, threshold=0.5)
    # edge only: clips 0 ✓, 1 fp, 2 missed → P=1/2, R=1/2
    assert table["edge_only"]["f1"] == pytest.approx(0.5)
    assert table["edge_only"]["cost_vs_cloud"] == pytest.approx(0.1)
    # cloud only: all 3 clips right
    assert table["cloud_only"]["f1"] == pytest.approx(1.0)
    assert table["cloud_only"]["cost_vs_cloud"] == pytest.approx(1.0)
    # dmd offloads windows 2 and 4 (score >= .5): fixes both edge errors
    d = table["dmd"]
    assert d["offload_rate"] == pytest.approx(2 / 6) and d["f1"] == pytest.approx(1.0)
    assert d["compute_ms_per_window"] == pytest.approx(1.0 + 0.5 + 10.0 / 3)
    assert d["cost_vs_cloud"] == pytest.approx((1.5 + 10.0 / 3) / 10.0)
    # confidence at the same rate offloads the 2 least confident: 0.45 (w5), 0.6 (w2)
    c = table["confidence"]
    assert c["offload_rate"] == pytest.approx(2 / 6)
    assert c["f1"] == pytest.approx(2 / 3)  # clip 2 still missed: P=1, R=1/2
    assert c["cost_vs_cloud"] == pytest.approx((1.0 + 10.0 / 3) / 10.0)
    # oracle offloads the edge's wrong windows: w2 (fp) and w4 (fn)
    assert table["oracle"]["offload_rate"] == pytest.approx(2 / 6)
    assert table["oracle"]["f1"] == pytest.approx(1.0)
    # window F1 of edge only: tp=1 (w0), fp=1 (w2), fn=1 (w4) → 0.5
    assert table["edge_only"]["window_f1"] == pytest.approx(0.5)


def test_curve_endpoints_are_edge_only_and_cloud_only() -> None:
    pred = _predictions()
    table = policy_metrics(pred, None, threshold=0.5)
    curve = f1_curve(pred, rates=(0.0, 0.5, 1.0))
    assert curve["dmd"][0] == curve["confidence"][0] == table["edge_only"]["f1"]
    assert curve["dmd"][-1] == curve["confidence"][-1] == table["cloud_only"]["f1"]
    assert "compute_ms_per_window" not in table["dmd"]


def test_bootstrap_of_one_hit_and_one_false_alarm_clip_hand_computed() -> None:
    # Clip 0 is a fall flagged as fall (TP), clip 1 a no-fall flagged as fall (FP). A
    # resample of two clips is {0,0} (F1 1) with p 1/4, {1,1} (F1 0) with p 1/4, or one of
    # each (tp 1, fp 1: F1 2/3) with p 1/2; so the middle 40 % is exactly 2/3 and the
    # 95 % interval spans [0, 1].
    final, clip, label = np.array([1, 1]), np.array([0, 1]), np.array([1, 0])
    narrow = clip_f1_bootstrap({"p": final}, clip, label, reps=4000, level=0.4, seed=1)
    assert narrow.intervals["p"] == pytest.approx((2 / 3, 2 / 3))
    wide = clip_f1_bootstrap({"p": final}, clip, label, reps=4000, seed=1)
    assert wide.intervals["p"] == pytest.approx((0.0, 1.0))


def test_bootstrap_differences_are_paired() -> None:
    rng = np.random.default_rng(0)
    clip = np.repeat(np.arange(40), 3)
    label = np.repeat(rng.integers(0, 2, 40), 3)
    noisy = rng.integers(0, 2, len(clip))
    perfect = label.copy()
    boot = clip_f1_bootstrap({"a": noisy, "b": noisy.copy(), "perfect": perfect}, clip, label,
                             pairs=(("a", "b"), ("perfect", "a")), reps=500)  # fmt: skip
    # Same decisions on the same resamples: the difference is exactly 0 in every resample.
    assert boot.differences[("a", "b")] == (0.0, 0.0, 0.0)
    assert boot.intervals["perfect"] == (1.0, 1.0)
    point, lo, hi = boot.differences[("perfect", "a")]
    pred, truth = clip_level(noisy, clip, label)
    assert point == pytest.approx(1.0 - prf(pred, truth)[2])
    assert 0.0 < lo <= point <= hi
    again = clip_f1_bootstrap({"a": noisy}, clip, label, reps=500)
    assert again.intervals["a"] == boot.intervals["a"], "seeded: the same every run"
    with pytest.raises(ValueError):
        clip_f1_bootstrap({"a": noisy}, clip, label, reps=0)


def test_table_json_and_plot_are_written(tmp_path: Path) -> None:
    pred = _predictions()
    times = ComputeTimes(edge_ms=1.0, switcher_ms=0.5, cloud_ms=10.0, sample_windows=6)
    boot = f1_bootstrap(pred, threshold=0.5)
    table = policy_metrics(pred, times, threshold=0.5, bootstrap=boot)
    lo, hi = table["dmd"]["f1_ci95"]
    assert lo <= table["dmd"]["f1"] <= hi
    report = {"policies": table, "f1_differences": differences_report(boot),
              "n_clips": 3, "n_fall_clips": 2, "n_windows": 6,
              "dmd_threshold": 0.5, "target_offload_rate": 0.2,
              "timing": {"edge_ms": 1.0, "switcher_ms": 0.5, "cloud_ms": 10.0,
                         "sample_windows": 6, "included": "test"}}  # fmt: skip
    text = format_table(report)
    for name in ("edge_only", "cloud_only", "confidence", "dmd", "oracle"):
        assert name in text
    # dmd and cloud_only both get every clip right here: a difference of exactly 0.
    assert report["f1_differences"]["dmd_minus_cloud_only"]["ci95"] == [0.0, 0.0]
    assert "F1 dmd - cloud_only: +0.000 (95% CI +0.000 to +0.000" in text
    json.loads(json.dumps(report))
    out = tmp_path / "plot.png"
    plot_curve(f1_curve(pred), table, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
