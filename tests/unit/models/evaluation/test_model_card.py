"""The model card's targets table judges the architecture's targets (../DESIGN.md section 6)."""

from __future__ import annotations

from typing import Any

from models.evaluation.model_card import _targets


def _report(cloud: float, dmd: float, conf: float, cost: float, edge_ms: float) -> dict[str, Any]:
    return {
        "policies": {
            "cloud_only": {"f1": cloud},
            "dmd": {"f1": dmd, "cost_vs_cloud": cost},
            "confidence": {"f1": conf},
        },
        "timing": {"edge_ms": edge_ms},
    }


def _verdicts(report: dict[str, Any]) -> dict[str, str]:
    rows = [line.split(" | ") for line in _targets(report)[2:]]
    return {row[0].lstrip("| "): row[1] for row in rows}


def test_a_hybrid_within_a_point_of_the_cloud_and_above_the_cascade_meets_its_targets() -> None:
    v = _verdicts(_report(cloud=0.91, dmd=0.905, conf=0.90, cost=0.19, edge_ms=1.5))
    assert set(v.values()) == {"yes"}


def test_each_target_misses_on_its_own_side_of_the_line() -> None:
    v = _verdicts(_report(cloud=0.85, dmd=0.83, conf=0.83, cost=0.21, edge_ms=2.1))
    assert v == {
        "cloud-only F1 >= 0.90": "**no**",
        "DMD F1 >= cloud-only F1 - 0.01": "**no**",
        "DMD F1 > confidence F1 (same offload)": "**no**",  # a tie is not above
        "DMD cost_vs_cloud <= 0.20": "**no**",
        "edge <= 2 ms per window": "**no**",
    }
