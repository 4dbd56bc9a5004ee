"""Link the people of one window's frames into tracks, and keep those who sink out of view.

Inputs: the window's `FramePoses` (T frames, e.g. 16 at 8 fps, from `MultiPoseModel.detect`
with its low default `min_score` 0.1) and a `TrackerConfig`. Output: `WindowTracks`, each
track `[T,17,3]` keypoints, `[T,4]` boxes, `[T]` person scores and `seen`/`held` masks.
How: frame by frame, every live track is scored against every detection by
`0.4 IoU + 0.4 keypoint similarity + 0.2 centre nearness` between the detection and the
track's last box and keypoints (the better of: where last seen, and moved on by its last
velocity) (keypoints at or above
`keypoint_score` in both, a Gaussian of their distance over the box size, IoU again
when none is shared; centres a Gaussian over half the track's tallest box, so that a
person dropping to the floor stays the same track); pairs are taken greedily, best
first, above `min_similarity`. A detection left over starts a track. A track left unmatched is
*held* (its last pose carried forward with zero scores, `held` True): for `hold_frames`
frames if the person was sinking when last seen (box wider than tall or at most
`low_ratio` of the track's tallest, or its top edge coming down, or a person score faded
under `start_score`) and not leaving through the left or right border; for `gap_frames`
otherwise. MoveNet scores a lying person
0.1-0.2 and then drops them: holding keeps a fall in the track to the window's end.
Guarantees: pure numpy, deterministic; a frame with nobody is fine; a track is reported
only if its best person score reaches `start_score` or it is seen in `confirm_frames`
frames (a steady low-score person, e.g. lying from the start); at most `max_tracks`,
most frames seen first; an upright track dropped after a gap loses its trailing held rows.
Failure modes: ValueError when the frames disagree on the frame size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.runtime.pose.results import F32, FramePoses, PoseTrack, WindowTracks

__all__ = ["TrackerConfig", "box_iou", "keypoint_similarity", "track_window"]


@dataclass(frozen=True)
class TrackerConfig:
    """Thresholds of `track_window` (defaults measured on renders, docs/POSE_MODELS.md)."""

    keep_score: float = 0.1  # a detection this good may continue a track
    start_score: float = 0.2  # a track's best person score must reach this ...
    confirm_frames: int = 4  # ... or the track must be seen in this many frames
    keypoint_score: float = 0.2  # keypoints at/above this take part in matching
    min_similarity: float = 0.15
    gap_frames: int = 2  # upright person unmatched: held this many frames, then dropped
    hold_frames: int = 12  # sinking person unmatched: held this many frames (1.5 s at 8 fps)
    low_ratio: float = 0.6
    descent_ratio: float = 0.15
    border_px: float = 2.0
    max_tracks: int = 6


def box_iou(a: F32, b: F32) -> F32:
    """IoU of boxes `a [N,4]` and `b [M,4]` (x0, y0, x1, y1) → `[N,M]`."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    out: F32 = (inter / np.maximum(union, 1e-6)).astype(np.float32)
    return out


def keypoint_similarity(kp_a: F32, kp_b: F32, scale: float, min_score: float) -> float:
    """Mean Gaussian similarity of the keypoints confident in both `[17,3]` poses, their
    distance over `scale` (pixels, the person's size); -1 when none is shared."""
    both = (kp_a[:, 2] >= min_score) & (kp_b[:, 2] >= min_score)
    if not both.any():
        return -1.0
    d2 = np.sum((kp_a[both, :2] - kp_b[both, :2]) ** 2, axis=1)
    sigma = 0.25 * max(scale, 1.0)
    return float(np.mean(np.exp(-d2 / (2.0 * sigma * sigma))))


@dataclass
class _Track:
    track_id: int
    rows: list[int] = field(default_factory=list)  # frames seen
    kps: dict[int, F32] = field(default_factory=dict)
    boxes: dict[int, F32] = field(default_factory=dict)
    scores: dict[int, float] = field(default_factory=dict)
    held: list[int] = field(default_factory=list)
    missed: int = 0
    tallest: float = 0.0
    alive: bool = True

    def last(self) -> int:
        return self.rows[-1]

    def velocity(self) -> F32:
        """Box motion per frame between the last two sightings (zeros with one)."""
        if len(self.rows) < 2:
            return np.zeros(4, np.float32)
        a, b = self.rows[-2], self.rows[-1]
        out: F32 = (self.boxes[b] - self.boxes[a]) / float(b - a)
        return out

    def add(self, t: int, kp: F32, box: F32, score: float) -> None:
        self.rows.append(t)
        self.kps[t], self.boxes[t], self.scores[t] = kp, box, score
        self.missed = 0
        self.tallest = max(self.tallest, float(box[3] - box[1]))


def _is_sinking(track: _Track, width: int, cfg: TrackerConfig) -> bool:
    """Did the person vanish in a way a fall explains (held), rather than by leaving?

    Sinking: last box low (wider than tall, or at most `low_ratio` of the tallest), or
    its top edge came down by `descent_ratio` of the tallest box over the last four
    sightings, or the person score had faded under `start_score`. Leaving (never held
    long): the last box touches the left or right border and was moving towards it.
    """
    last = track.last()
    box = track.boxes[last]
    w, h = float(box[2] - box[0]), float(box[3] - box[1])
    first = track.rows[max(0, len(track.rows) - 4)]
    descent = float(box[1] - track.boxes[first][1])
    sinking = (
        w >= h
        or h <= cfg.low_ratio * track.tallest
        or descent >= cfg.descent_ratio * track.tallest
        or track.scores[last] < cfg.start_score
    )
    vx = float(track.velocity()[0] + track.velocity()[2])
    leaving = (box[0] <= cfg.border_px and vx < 0) or (box[2] >= width - cfg.border_px and vx > 0)
    return bool(sinking and not leaving)


def _pair_scores(box: F32, kp: F32, tallest: float, frame: FramePoses, cfg: TrackerConfig) -> F32:
    """Similarity `[P]` of one (predicted) track pose to every detection of a frame."""
    iou = box_iou(box[None], frame.boxes)[0]
    size = float(np.sqrt(max((box[2] - box[0]) * (box[3] - box[1]), 1.0)))
    # Centres compared on the person's standing height: a fall moves the box centre
    # down by about half of it and changes the box's shape, which IoU alone rejects.
    d2 = np.sum((0.5 * (frame.boxes[:, :2] + frame.boxes[:, 2:]) - 0.5 * (box[:2] + box[2:])) ** 2,
                axis=1)  # fmt: skip
    sigma = 0.5 * max(tallest, float(box[3] - box[1]), 1.0)
    near = np.exp(-d2 / (2.0 * sigma * sigma))
    out = np.empty(len(frame), np.float32)
    for j in range(len(frame)):
        ks = keypoint_similarity(kp, frame.keypoints[j], size, cfg.keypoint_score)
        out[j] = 0.4 * iou[j] + 0.4 * (iou[j] if ks < 0 else ks) + 0.2 * near[j]
    return out


def _similarity(tracks: list[_Track], frame: FramePoses, t: int, cfg: TrackerConfig) -> F32:
    """`[tracks, detections]`: the better of the track's pose where it was last seen and
    moved on by its last velocity (a sudden change of shape, as in a fall, makes the
    velocity of the box corners meaningless; a steady walk makes the moved one win)."""
    sim = np.full((len(tracks), len(frame)), -1.0, dtype=np.float32)
    if not len(frame):
        return sim
    for i, tr in enumerate(tracks):
        box, kp = tr.boxes[tr.last()], tr.kps[tr.last()]
        shift = float(t - tr.last()) * tr.velocity()
        moved_kp = kp.copy()
        moved_kp[:, :2] += 0.5 * (shift[:2] + shift[2:])
        sim[i] = np.maximum(
            _pair_scores(box, kp, tr.tallest, frame, cfg),
            _pair_scores(box + shift, moved_kp, tr.tallest, frame, cfg),
        )
    return sim


def track_window(poses: list[FramePoses], config: TrackerConfig | None = None) -> WindowTracks:
    """Tracks of the people in one window's frames (see the module docstring)."""
    cfg = config or TrackerConfig()
    n = len(poses)
    width = poses[0].width if poses else 0
    height = poses[0].height if poses else 0
    if any((p.width, p.height) != (width, height) for p in poses):
        raise ValueError("frames of one window must share one frame size")
    tracks: list[_Track] = []
    for t, frame_all in enumerate(poses):
        frame = frame_all.above(cfg.keep_score)
        live = [tr for tr in tracks if tr.alive]
        sim = _similarity(live, frame, t, cfg)
        matched_t: set[int] = set()
        matched_d: set[int] = set()
        for flat in np.argsort(-sim, axis=None, kind="stable"):
            i, j = divmod(int(flat), max(1, len(frame)))
            if sim[i, j] < cfg.min_similarity:
                break
            if i in matched_t or j in matched_d:
                continue
            live[i].add(t, frame.keypoints[j], frame.boxes[j], float(frame.scores[j]))
            matched_t.add(i)
            matched_d.add(j)
        for i, tr in enumerate(live):
            if i in matched_t:
                continue
            tr.missed += 1
            low = _is_sinking(tr, width, cfg)
            if tr.missed <= (cfg.hold_frames if low else cfg.gap_frames):
                tr.held.append(t)
            else:
                tr.alive = False
                if not low:  # walked away or lost while upright: no stale trailing rows
                    tr.held = [h for h in tr.held if h < tr.last()]
        for j in range(len(frame)):
            if j not in matched_d:
                tr = _Track(track_id=len(tracks))
                tr.add(t, frame.keypoints[j], frame.boxes[j], float(frame.scores[j]))
                tracks.append(tr)
    for tr in tracks:  # still alive at the end but upright and gone: drop trailing rows
        if tr.alive and tr.missed and not _is_sinking(tr, width, cfg):
            tr.held = [h for h in tr.held if h < tr.last()]
    kept = [
        tr
        for tr in tracks
        if max(tr.scores.values()) >= cfg.start_score or len(tr.rows) >= cfg.confirm_frames
    ]
    kept.sort(key=lambda tr: (-len(tr.rows), tr.track_id))
    n_kp = poses[0].keypoints.shape[1] if poses else 17
    return WindowTracks(tuple(_finish(tr, n, n_kp) for tr in kept[: cfg.max_tracks]),
                        n, width, height)  # fmt: skip


def _finish(tr: _Track, n: int, n_kp: int) -> PoseTrack:
    kps = np.zeros((n, n_kp, 3), np.float32)
    boxes = np.zeros((n, 4), np.float32)
    scores = np.zeros(n, np.float32)
    seen = np.zeros(n, bool)
    held = np.zeros(n, bool)
    for t in tr.rows:
        kps[t], boxes[t], scores[t], seen[t] = tr.kps[t], tr.boxes[t], tr.scores[t], True
    for t in tr.held:
        src = max(r for r in tr.rows if r < t)
        kps[t, :, :2] = tr.kps[src][:, :2]
        boxes[t] = tr.boxes[src]
        held[t] = True
    return PoseTrack(tr.track_id, kps, boxes, scores, seen, held)
