"""How well the pose stage sees rendered people: detection rate, keypoint thresholds, holds.

    python -m models.evaluation.pose_measure [--clips 20] [--sizes 160x120,320x240,640x480] [--json F]

Inputs: clips rendered by `models.synth` (preset `heldout` by default; 70 % falls, the
rest everyday actions), each at every size (same seed, so the same scene), 8 fps; the
pose model from the zoo. Outputs (printed, optionally JSON): per size and long side,
the share of frames where the true person is *on body* (a detection, person score >=
0.1, with at least 7 of the 13 body keypoints nose/shoulders/elbows/wrists/hips/knees/
ankles within 0.2 body sizes of the renderer's true joints, left/right mirror allowed),
over all frames and over the lying end of falls (from the fall's impact + 0.25 s); the
keypoint precision/recall at score thresholds 0.1-0.4 (on the person's own detection);
for each fall, the 16-frame window whose last second starts at the impact: whether a
track of the person (7 of 13 keypoints within 0.4 body sizes in a frame it was seen)
is still present (seen or held) in the last frame, with holding (default) and without
(`hold_frames` 2), and whether the detector alone finds the person on body in that
last frame; ms per frame.
Guarantees: deterministic frames; measurement only, nothing is trained or written.
This is a diagnostic (build time), not imported by the runtime.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace

import numpy as np

from models.runtime.pose import zoo_pose_path
from models.runtime.pose.blazepose import BlazePoseModel
from models.runtime.pose.metadata import COCO_KEYPOINTS
from models.runtime.pose.multipose import MultiPoseModel
from models.runtime.pose.results import F32, FramePoses
from models.runtime.pose.tracker import TrackerConfig, track_window

__all__ = ["BODY_PAIRS", "body_size", "main", "on_body", "truth_keypoints"]

# COCO keypoint ↔ renderer joint (models.synth.skeleton.JOINTS); eyes and ears have none.
BODY_PAIRS: tuple[tuple[str, str], ...] = (
    ("nose", "nose"),
    ("left_shoulder", "shoulder_l"), ("right_shoulder", "shoulder_r"),
    ("left_elbow", "elbow_l"), ("right_elbow", "elbow_r"),
    ("left_wrist", "wrist_l"), ("right_wrist", "wrist_r"),
    ("left_hip", "hip_l"), ("right_hip", "hip_r"),
    ("left_knee", "knee_l"), ("right_knee", "knee_r"),
    ("left_ankle", "ankle_l"), ("right_ankle", "ankle_r"),
)  # fmt: skip
_COCO_IDX = np.array([COCO_KEYPOINTS.index(c) for c, _ in BODY_PAIRS])
_MIRROR = np.array([0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11])
FALLS = ("fall_forward", "fall_backward", "fall_sideways", "fall_collapse", "slump_from_chair")
OTHERS = ("walk", "stand_still", "sit_down", "lie_down_floor", "bend_pick_up", "kneel")


def truth_keypoints(joints_uv: F32) -> F32:
    """Renderer joints `[T,25,2]` → the 13 body keypoints `[T,13,2]` in BODY_PAIRS order."""
    from models.synth.skeleton import joint_index

    out: F32 = joints_uv[:, [joint_index(r) for _, r in BODY_PAIRS]]
    return out


def body_size(joints_uv: F32) -> F32:
    """Per-frame body length in pixels `[T]`: head top-neck-pelvis-knee-ankle, legs averaged
    (kept when lying, unlike a box height)."""
    from models.synth.skeleton import joint_index

    j = {n: joints_uv[:, joint_index(n)] for n in
         ("head_top", "neck", "pelvis", "knee_l", "knee_r", "ankle_l", "ankle_r")}  # fmt: skip

    def d(a: F32, b: F32) -> F32:
        out: F32 = np.linalg.norm(a - b, axis=-1)
        return out

    leg = 0.5 * (d(j["pelvis"], j["knee_l"]) + d(j["knee_l"], j["ankle_l"])
                 + d(j["pelvis"], j["knee_r"]) + d(j["knee_r"], j["ankle_r"]))  # fmt: skip
    out: F32 = d(j["head_top"], j["neck"]) + d(j["neck"], j["pelvis"]) + leg
    return out


def on_body(pred: F32, truth: F32, size: float, frac: float = 0.2) -> F32:
    """`[13]` bool-as-float: which of a detection's 13 body keypoints (`pred` `[17,3]`)
    are within `frac` body sizes of `truth` `[13,2]`, in the better of the two mirrors."""
    p = pred[_COCO_IDX, :2]
    best = np.zeros(len(_COCO_IDX), np.float32)
    for perm in (np.arange(len(_COCO_IDX)), _MIRROR):
        ok = (np.linalg.norm(p[perm] - truth, axis=1) <= frac * size).astype(np.float32)
        if ok.sum() > best.sum():
            best = ok
    return best


@dataclass
class _Tally:
    frames: int = 0
    found: int = 0
    lying: int = 0
    lying_found: int = 0


def _best_match(poses: FramePoses, truth: F32, size: float) -> tuple[int, F32]:
    best, hits = -1, np.zeros(len(BODY_PAIRS), np.float32)
    for k in range(len(poses)):
        ok = on_body(poses.keypoints[k], truth, size)
        if ok.sum() > hits.sum():
            best, hits = k, ok
    return best, hits


def measure(
    clips: int, sizes: list[tuple[int, int, int]], preset: str, blazepose: bool = False,
    both: bool = False,
) -> dict[str, object]:  # fmt: skip
    """The report of the module docstring; `both`: MultiPose, and a frame counts as found
    when MultiPose or BlazePose finds the person (keypoint and tracker figures: MultiPose)."""
    from models.synth import render_clip
    from models.synth.clip import ClipTruth

    models: dict[int, MultiPoseModel | BlazePoseModel] = {}
    report: dict[str, object] = {}
    thresholds = (0.1, 0.2, 0.3, 0.4)
    for w, h, long_side in sizes:
        model = models.get(long_side)
        if model is None and blazepose:
            model = BlazePoseModel.load(
                zoo_pose_path("blazepose_detector"),
                zoo_pose_path("blazepose_landmark_full"),
                threads=1,
            )
        elif model is None:
            model = MultiPoseModel.load(zoo_pose_path(), threads=1, long_side=long_side)
        models[long_side] = model
        extra = None
        if both:
            extra = BlazePoseModel.load(
                zoo_pose_path("blazepose_detector"),
                zoo_pose_path("blazepose_landmark_full"),
                threads=1,
            )
        tally = _Tally()
        kp_hits = {t: [0, 0] for t in thresholds}  # [correct & above, above]
        kp_total = 0
        end_kept = {"hold": 0, "no_hold": 0, "detected_last_frame": 0, "falls": 0}
        ms: list[float] = []
        for c in range(clips):
            falls = c % 10 < 7
            action = FALLS[c % len(FALLS)] if falls else OTHERS[c % len(OTHERS)]
            truth = ClipTruth.empty()
            frames, meta = render_clip(1000 + c, preset=preset, action=action, width=w,
                                       height=h, fps=8.0, truth=truth)  # fmt: skip
            poses, timing = model.detect_timed(frames)
            ms.append(timing.ms_per_frame)
            extra_poses = extra.detect(frames) if extra is not None else None
            tk, sizes_px = truth_keypoints(truth.joints_uv), body_size(truth.joints_uv)
            lying_from = None if meta.fall_end_s is None else meta.fall_end_s + 0.25
            for t, frame in enumerate(poses):
                k, hits = _best_match(frame, tk[t], float(sizes_px[t]))
                found = hits.sum() >= 7
                if extra_poses is not None and not found:
                    found = _best_match(extra_poses[t], tk[t], float(sizes_px[t]))[1].sum() >= 7
                lying = lying_from is not None and t / 8.0 >= lying_from
                tally.frames += 1
                tally.found += int(found)
                tally.lying += int(lying)
                tally.lying_found += int(lying and found)
                if k >= 0 and hits.sum() >= 4:  # keypoint thresholds on the person's own detection
                    scores = frame.keypoints[k, _COCO_IDX, 2]
                    kp_total += len(_COCO_IDX)
                    for thr in thresholds:
                        above = scores >= thr
                        kp_hits[thr][0] += int((above & (hits > 0)).sum())
                        kp_hits[thr][1] += int(above.sum())
            if meta.fall_end_s is not None:
                # The window whose last second starts at the impact: what a classifier
                # must still see the fallen person in.
                stop = min(len(frames), int(np.ceil(meta.fall_end_s * 8.0)) + 8)
                start = max(0, stop - 16)
                end_kept["falls"] += 1
                last_truth, last_size = tk[stop - 1], float(sizes_px[stop - 1])
                for key, cfg in (("hold", TrackerConfig()),
                                 ("no_hold", replace(TrackerConfig(), hold_frames=2))):  # fmt: skip
                    tracks = track_window(poses[start:stop], cfg)
                    ok = any(
                        tr.present[-1] and any(
                            on_body(tr.keypoints[i], tk[start + i], float(sizes_px[start + i]),
                                    frac=0.4).sum() >= 7
                            for i in np.flatnonzero(tr.seen))
                        for tr in tracks.tracks
                    )  # fmt: skip
                    end_kept[key] += int(ok)
                seen_last = _best_match(poses[stop - 1], last_truth, last_size)[1].sum() >= 7
                end_kept["detected_last_frame"] += int(seen_last)
        row = {
            "model": "blazepose_full" if blazepose else
                     "multipose+blazepose" if both else "movenet_multipose",
            "size": f"{w}x{h}", "long_side": long_side, "clips": clips, "frames": tally.frames,
            "on_body_all": tally.found / max(1, tally.frames),
            "lying_frames": tally.lying, "on_body_lying": tally.lying_found / max(1, tally.lying),
            "keypoints": {str(t): {"precision": v[0] / max(1, v[1]), "recall": v[0] / max(1, kp_total)}
                          for t, v in kp_hits.items()},
            "fall_end_in_track": end_kept,
            "ms_per_frame_median": float(np.median(ms)),
        }  # fmt: skip
        report[f"{w}x{h}@{long_side}"] = row
        print(json.dumps(row), flush=True)
    return report


def time_per_frame(blazepose: bool, width: int = 320, height: int = 240, reps: int = 5
                   ) -> dict[str, float]:  # fmt: skip
    """ms per frame (1 thread, pre- + inference + postprocessing) on one rendered 16-frame
    window at `width`x`height`, `reps` passes after a warm-up pass: median and best pass."""
    import os

    from models.synth import render_clip

    frames, _ = render_clip(7, preset="heldout", action="fall_sideways", width=width,
                            height=height, fps=8.0, duration_s=2.0)  # fmt: skip
    model: MultiPoseModel | BlazePoseModel
    if blazepose:
        model = BlazePoseModel.load(
            zoo_pose_path("blazepose_detector"), zoo_pose_path("blazepose_landmark_full"), threads=1
        )
    else:
        model = MultiPoseModel.load(zoo_pose_path(), threads=1)
    model.detect_timed(frames)
    passes = [model.detect_timed(frames)[1] for _ in range(reps)]
    ms = [p.ms_per_frame for p in passes]
    best = min(passes, key=lambda p: p.ms_per_frame)
    return {"median_ms": float(np.median(ms)), "best_ms": float(min(ms)),
            "best_inference_ms": 1000 * best.inference_s / best.frames,
            "best_pre_ms": 1000 * best.preprocess_s / best.frames,
            "best_post_ms": 1000 * best.postprocess_s / best.frames,
            "frames_per_pass": float(len(frames)), "load_1min": os.getloadavg()[0]}  # fmt: skip


def _size(text: str) -> tuple[int, int, int]:
    parts = text.replace("@", "x").split("x")
    w, h = int(parts[0]), int(parts[1])
    return w, h, int(parts[2]) if len(parts) > 2 else 256


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.evaluation.pose_measure",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument(
        "--sizes",
        default="160x120,320x240,640x480",
        help="WxH[@long side], comma separated (long side 256 by default)",
    )
    parser.add_argument("--preset", default="heldout")
    parser.add_argument("--json", default="")
    parser.add_argument(
        "--blazepose",
        action="store_true",
        help="measure BlazePose full (detector + landmarks) instead",
    )
    parser.add_argument(
        "--both", action="store_true", help="found = MultiPose or BlazePose finds the person"
    )
    parser.add_argument(
        "--timing", action="store_true", help="only time one 320x240 window (1 thread) and exit"
    )
    args = parser.parse_args(argv)
    if args.timing:
        print(json.dumps(time_per_frame(args.blazepose)))
        return 0
    t0 = time.perf_counter()
    report = measure(
        args.clips,
        [_size(s) for s in args.sizes.split(",")],
        args.preset,
        args.blazepose,
        args.both,
    )
    print(f"measured in {time.perf_counter() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
