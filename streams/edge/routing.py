"""Pure routing decision for one window at the edge: answer locally, or offload to the cloud.

Inputs: the edge model's P(fall), the switcher's score P(edge wrong), the switcher threshold,
the fall threshold, the audit rate and the window's identity (stream id, sequence number).
Output: a frozen ``RoutingDecision`` saying where the window goes, the edge's own label, and
whether (and why) an offload request is sent.

Rule (docs/ARCHITECTURE.md, "How a window flows"):
- ``switcher_score >= threshold`` → "uncertain": offload, the edge answer is kept only as the
  fallback if the cloud misses its deadline.
- otherwise "confident": the edge result is final; additionally an "audit" offload is sent for
  a deterministic share ``audit_rate`` of windows chosen by a hash of ``stream_id:window_seq``
  (never Python's salted ``hash()``), so a replayed window makes the same choice in every
  process and every run.

Guarantees: no I/O, no randomness, no clock; the same inputs always give the same decision.
A non-finite score or probability is routed to the cloud (safest answer: we don't trust a NaN).
Failure modes: ``ValueError`` on thresholds or rates outside [0, 1].
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Literal

from models.runtime.windows import LABELS

__all__ = [
    "FALL",
    "NO_FALL",
    "OffloadReason",
    "RoutePath",
    "RoutingDecision",
    "audit_sampled",
    "label_for",
    "route_window",
]

RoutePath = Literal["edge", "offload"]
OffloadReason = Literal["uncertain", "audit"]

# Label indices into models.runtime.windows.LABELS, as carried by the result schema's `label` field.
NO_FALL = 0
FALL = 1

# 2**64: the audit hash uses the first 8 bytes of sha256 as a uniform integer.
_HASH_SPACE = float(1 << 64)


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """Where one window goes.

    ``path`` is "edge" (the edge result is final) or "offload" (the cloud decides; the edge
    answer becomes the edge-fallback result). ``offload_reason`` is None when no offload
    request is sent, "uncertain" for path="offload", "audit" for a confident window that is
    also sampled for drift monitoring. ``label`` is the edge model's own label as an index into
    ``LABELS`` (1 = fall), used for the edge result or the fallback.
    """

    path: RoutePath
    label: int
    offload_reason: OffloadReason | None

    @property
    def is_fall(self) -> bool:
        """True when the edge's own label is "fall"."""
        return self.label == FALL

    @property
    def label_name(self) -> str:
        """The label as a name from ``LABELS`` ("no_fall" or "fall")."""
        return LABELS[self.label]

    @property
    def sends_offload(self) -> bool:
        """True when an offload request is published (uncertain or audit)."""
        return self.offload_reason is not None

    @property
    def metric_paths(self) -> tuple[str, ...]:
        """Values of the ``path`` label of fallwatch_windows_routed_total for this window."""
        if self.path == "offload":
            return ("offload",)
        return ("edge", "audit") if self.offload_reason == "audit" else ("edge",)


def _check_unit(name: str, value: float) -> None:
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


def label_for(p_fall: float, fall_threshold: float) -> int:
    """1 (fall) when ``p_fall >= fall_threshold``, else 0 (no_fall); NaN gives 0."""
    _check_unit("fall_threshold", fall_threshold)
    return FALL if p_fall >= fall_threshold else NO_FALL


def audit_sampled(stream_id: str, window_seq: int, audit_rate: float) -> bool:
    """Deterministic Bernoulli(audit_rate) draw keyed by the window's identity.

    Stable across processes, restarts and Python versions (sha256, not ``hash()``), so a
    redelivered window is audited again or not at all, never "sometimes".
    """
    _check_unit("audit_rate", audit_rate)
    if audit_rate <= 0.0:
        return False
    if audit_rate >= 1.0:
        return True
    digest = hashlib.sha256(f"{stream_id}:{window_seq}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _HASH_SPACE < audit_rate


def route_window(
    *,
    p_fall: float,
    switcher_score: float,
    threshold: float,
    fall_threshold: float,
    audit_rate: float,
    stream_id: str,
    window_seq: int,
) -> RoutingDecision:
    """Decide the route of one window (see the module docstring for the rule)."""
    _check_unit("threshold", threshold)
    _check_unit("fall_threshold", fall_threshold)
    _check_unit("audit_rate", audit_rate)
    label = label_for(p_fall, fall_threshold)
    if not (math.isfinite(switcher_score) and math.isfinite(p_fall)):
        return RoutingDecision(path="offload", label=label, offload_reason="uncertain")
    if switcher_score >= threshold:
        return RoutingDecision(path="offload", label=label, offload_reason="uncertain")
    if audit_sampled(stream_id, window_seq, audit_rate):
        return RoutingDecision(path="edge", label=label, offload_reason="audit")
    return RoutingDecision(path="edge", label=label, offload_reason=None)
