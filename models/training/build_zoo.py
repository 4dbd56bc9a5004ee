"""`make models`: rebuild the whole model zoo from scratch and evaluate it.

Run: `python -m models.training.build_zoo --out models/zoo [--quick] [--heldout-dir data/heldout]`.
Stages (each timed and printed):
1. render train clips (preset "train" or `--train-preset`, seeds TRAIN_BASE + i);
2. train the edge model, export `edge.onnx`;
3. train the cloud model, export `cloud.onnx`;
4. render a DISJOINT unlabeled DMD pool (the train preset, seeds POOL_BASE + i)
   and distil `switcher.onnx` (labels never rendered into the pool);
5. render a fresh unlabeled pool (seeds FRESH_BASE + i) and check the share of
   windows the switcher offloads against the target;
6. render the held-out clip folder (preset "heldout", seeds from HELDOUT_SEED)
   with the synth helper's `write_dataset` (skipped when it is already there
   with the same size and seed — it is regenerable by one command — and when
   `--heldout-dir` is a labelled folder this build did not render, such as one's
   own footage, which is evaluated as it is and never written to);
7. evaluate all policies on it → `evaluation.json`, `evaluation.png`;
8. write `MODEL_CARD.md` (architecture, sizes, compute, data, seeds, table,
   limits, stage timings).
Guarantees: train, pool, fresh pool and held-out seeds are disjoint ranges and
the held-out preset differs; nothing is fitted on held-out data (it is only read
in stage 7). `--quick` runs the same chain at a tiny size (a few minutes).
Failure modes: any stage's error stops the build with a non-zero exit; files
already written by earlier stages stay (each .onnx is written atomically).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from models.synth.presets import preset_arg
from models.training.frames_cache import render_train_frames
from models.training.recipe import (
    FRESH_BASE,
    FULL,
    HELDOUT_SEED,
    POOL_BASE,
    QUICK,
    ROLE_DECISION,
    ROLE_HIDDEN,
    ROLE_SEG_BATCH,
    VERSION,
    BuildConfig,
)

__all__ = ["build", "main"]

log = logging.getLogger(__name__)


class StageTimer:
    """Times named stages and prints each as it finishes."""

    def __init__(self) -> None:
        self.stages: list[tuple[str, float]] = []
        self.t0 = time.monotonic()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        print(f"[build] >>> {name} (load {os.getloadavg()[0]:.2f})", flush=True)
        t = time.monotonic()
        yield
        secs = time.monotonic() - t
        self.stages.append((name, secs))
        print(f"[build] <<< {name}: {secs:.1f}s (total {time.monotonic() - self.t0:.0f}s, "
              f"load {os.getloadavg()[0]:.2f})", flush=True)  # fmt: skip

    @property
    def total(self) -> float:
        return time.monotonic() - self.t0


def _seeds(base: int, n: int) -> list[int]:
    from models.training.dataset import clip_seeds

    return clip_seeds(base, n)


HELDOUT_MARKER = ".fallwatch-heldout.json"


def _heldout_ready(folder: Path, n: int) -> bool:
    marker = folder / HELDOUT_MARKER
    if not marker.exists() or not (folder / "labels.csv").exists():
        return False
    info = json.loads(marker.read_text())
    return bool(info.get("n") == n and info.get("seed") == HELDOUT_SEED)


def _users_folder(folder: Path) -> bool:
    """A labelled clip folder this build did not render (someone's own footage): it is
    evaluated as it is and never written to."""
    return (folder / "labels.csv").exists() and not (folder / HELDOUT_MARKER).exists()


def _write_heldout(folder: Path, cfg: BuildConfig) -> None:
    from models.synth import write_dataset

    write_dataset(folder, cfg.heldout_clips, HELDOUT_SEED, "heldout", cfg.workers)
    (folder / HELDOUT_MARKER).write_text(
        json.dumps({"n": cfg.heldout_clips, "seed": HELDOUT_SEED, "preset": "heldout"})
    )


def _prepare_heldout(folder: Path, cfg: BuildConfig) -> Literal["ready", "folder", "rendered"]:
    """Stage 6: leave the held-out folder as it is when this build rendered it before with the
    same size and seed ("ready") or when it is a labelled folder this build did not render,
    such as one's own footage ("folder": never written to); otherwise render it."""
    if _heldout_ready(folder, cfg.heldout_clips):
        print(f"[build] held-out folder {folder} already rendered (same n and seed)")
        return "ready"
    if _users_folder(folder):
        print(f"[build] {folder} holds a labels.csv this build did not render: "
              "evaluating that folder as it is (nothing rendered into it)")  # fmt: skip
        return "folder"
    _write_heldout(folder, cfg)
    return "rendered"


STAGES = ("render", "edge", "cloud", "distill", "fresh", "heldout", "evaluate")


def _save_summary(out: Path, summary: dict[str, Any], timer: StageTimer) -> None:
    summary["stages"] = summary.get("stages_before", []) + [
        {"stage": n, "seconds": round(s, 1)} for n, s in timer.stages
    ]
    summary["total_seconds"] = round(sum(s["seconds"] for s in summary["stages"]), 1)
    (out / "build_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")


def _model_info_from_onnx(path: Path) -> dict[str, Any]:
    """What the model card needs, recovered from a zoo file (when resuming a build)."""
    import onnx

    from models.runtime.metadata import read_metadata

    model = onnx.load(str(path))
    meta = read_metadata(model)
    decision = meta.extra_json("decision") or {}
    n_params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    return {"macs": meta.flops, "params": n_params, "epochs_run": "?", "stopped_early": False,
            "train_seconds": float("nan"), "val_threshold": decision.get("val_threshold", 0.5),
            "val_clip_f1": decision.get("val_clip_f1", float("nan")), "sha256": meta.sha256,
            "width": "?", "tta_flip": meta.name.endswith("cloud"), "history": []}  # fmt: skip


def _dmd_info_from_onnx(path: Path) -> dict[str, Any]:
    from models.runtime.onnx_models import Switcher

    sw = Switcher.load(path)
    info = sw.meta.extra_json("dmd") or {}
    return {"pool_windows": info.get("pool_windows", 0),
            "switcher_train_windows": info.get("fit_windows", 0),
            "calibration_windows": info.get("calibration_windows", 0),
            "disagreement_rate": info.get("disagreement_rate", float("nan")),
            "target_kind": info.get("target", "?"), "threshold": sw.threshold,
            "target_offload_rate": sw.meta.target_offload_rate,
            "calibration_offload_rate": float("nan"), "seconds": float("nan"),
            "n_features": len(sw.features)}  # fmt: skip


def build(
    out: Path, cfg: BuildConfig, heldout_dir: Path, *, progress: bool = True,
    resume_from: str | None = None, cache_dir: Path | None = None,
    predictions_out: Path | None = None,
    keep: tuple[str, ...] = (),
    note: str = "",
) -> dict[str, Any]:  # fmt: skip
    """Run all stages (or those from `resume_from` on); returns the build summary."""
    from models.evaluation.model_card import write_model_card

    out.mkdir(parents=True, exist_ok=True)
    timer = StageTimer()
    start = STAGES.index(resume_from) if resume_from else 0
    if start > 0:
        old = json.loads((out / "build_summary.json").read_text()) if (
            out / "build_summary.json").exists() else {}  # fmt: skip
        summary: dict[str, Any] = {**old, "config": asdict(cfg), "resumed_from": resume_from}
        # Stage "N name" ran before and is not rerun: N - 1 < start, and the train
        # render (N = 1) is rerun whenever a model is retrained.
        kept = [
            s
            for s in old.get("stages", [])
            if (int(s["stage"][0]) <= start and not (s["stage"][0] == "1" and start <= 2))
            or any(s["stage"] == f"{2 if r == 'edge' else 3} train {r}" for r in keep)
        ]
        summary["stages_before"] = kept
        summary.setdefault("models", {})
        for role in ("edge", "cloud"):
            if start > STAGES.index(role) or role in keep:
                # Kept from the previous run: its recorded numbers stay when present.
                summary["models"].setdefault(role, _model_info_from_onnx(out / f"{role}.onnx"))
        if "dmd" not in summary and start > STAGES.index("distill"):
            summary["dmd"] = _dmd_info_from_onnx(out / "switcher.onnx")
        print(f"[build] resuming from stage {resume_from!r}; earlier stages kept: "
              f"{[s['stage'] for s in kept]}")  # fmt: skip
    else:
        summary = {"config": asdict(cfg), "started_at": _now(), "out": str(out), "models": {}}
    summary["heldout_dir"] = str(heldout_dir)
    summary["heldout_source"] = "folder" if _users_folder(heldout_dir) else "synthetic"
    summary["note"] = note
    frames: Any = None  # models.training.dataset.ClipFrames, imported lazily with the train extra
    if start <= STAGES.index("cloud"):
        with timer.stage("1 render train clips"):
            frames = render_train_frames(cfg, progress, cache_dir)
        summary["train_data"] = {
            "frames": len(frames.x), "windows": len(frames.y),
            "fall_windows": int(frames.y.sum()), "clips": len(np.unique(frames.clip)),
            "fall_clips": len(np.unique(frames.clip[frames.clip_label == 1])),
        }  # fmt: skip
        print(f"[build] train data: {json.dumps(summary['train_data'])}")
    roles: tuple[Literal["edge", "cloud"], ...] = ("edge", "cloud")
    for role in roles:
        if start <= STAGES.index(role) and role not in keep:
            with timer.stage(f"{2 if role == 'edge' else 3} train {role}"):
                summary["models"][role] = _train_role(role, frames, cfg, out, progress)
            _save_summary(out, summary, timer)
    frames = None  # several GB: freed before the DMD pool is rendered
    if start <= STAGES.index("distill"):
        with timer.stage("4 render DMD pool + distil switcher"):
            summary["dmd"] = _distil(cfg, out, progress)
        _save_summary(out, summary, timer)
    if start <= STAGES.index("fresh"):
        with timer.stage("5 fresh-pool offload check"):
            summary["fresh_pool"] = _fresh_check(cfg, out, progress)
        _save_summary(out, summary, timer)
    if start <= STAGES.index("heldout"):
        with timer.stage("6 render held-out clip folder"):
            _prepare_heldout(heldout_dir, cfg)
    with timer.stage("7 evaluate on held-out"):
        from models.evaluation.evaluate import evaluate_folder

        report = evaluate_folder(heldout_dir, out / "edge.onnx", out / "cloud.onnx",
                                 out / "switcher.onnx", json_out=out / "evaluation.json",
                                 plot_out=out / "evaluation.png", progress=progress,
                                 predictions_out=predictions_out)  # fmt: skip
    summary["finished_at"] = _now()
    _save_summary(out, summary, timer)
    write_model_card(out / "MODEL_CARD.md", summary, report)
    print("[build] stage timings:")
    for st in summary["stages"]:
        print(f"[build]   {st['stage']:<40} {st['seconds']:8.1f}s")
    print(f"[build] total {summary['total_seconds']:.1f}s ({summary['total_seconds'] / 60:.1f} min)"
          f"{' (earlier stages from the previous run)' if start else ''}")  # fmt: skip
    return summary


def _train_role(
    role: Literal["edge", "cloud"], frames: Any, cfg: BuildConfig, out: Path, progress: bool
) -> dict[str, Any]:
    """Train one video model on the rendered frames, export `{role}.onnx` and the per-frame
    stage's weights `{role}_segmenter.npz` (for head-only retraining on real footage)."""
    import torch

    from models.runtime.metadata import ModelMeta
    from models.training.export import export_video_model
    from models.training.nets import ExportWrapper, count_macs
    from models.training.silhouette import (
        SilhouetteConfig,
        edge_silhouette_spec,
        save_segmenter,
        silhouette_spec,
        train_silhouette_cloud,
    )

    edge = role == "edge"
    spec = edge_silhouette_spec() if edge else silhouette_spec()
    scfg = SilhouetteConfig(
        seg_steps=cfg.edge_seg_steps if edge else cfg.cloud_seg_steps,
        seg_minutes=cfg.edge_seg_minutes if edge else cfg.cloud_seg_minutes,
        head_epochs=cfg.edge_head_epochs if edge else cfg.cloud_head_epochs,
        width=cfg.edge_width if edge else cfg.cloud_width,
        hidden=cfg.edge_hidden if edge else ROLE_HIDDEN[role], seg_batch=ROLE_SEG_BATCH[role],
        decision=ROLE_DECISION[role], role=role,
        tta_flip=False if edge else cfg.cloud_tta_flip, heads=1 if edge else cfg.cloud_heads,
        bg_swap=0.0 if edge else cfg.cloud_bg_swap, motion=not edge and cfg.cloud_motion,
        seed=cfg.seed, threads=cfg.train_threads, progress=progress,
    )  # fmt: skip
    res = train_silhouette_cloud(frames, spec, scfg)
    example = torch.zeros(1, spec.channels, spec.frames, spec.height, spec.width)
    macs = count_macs(ExportWrapper(res.net, with_embedding=edge), example)
    meta = ModelMeta(
        role=role, name=f"fallwatch-{role}", version=VERSION, input=spec, seed=cfg.seed,
        trained_at=_now(), flops=macs,
        extra={"fallwatch.decision": json.dumps(
            {"val_threshold": res.threshold, "head_thresholds": res.thresholds,
             "val_clip_f1": res.val_clip_f1,
             "folded_into_logits": True})},
    )  # fmt: skip
    stamped = export_video_model(res.net, meta, out / f"{role}.onnx", with_embedding=edge)
    save_segmenter(res.net, out / f"{role}_segmenter.npz", model_sha256=stamped.sha256)
    return {
        "macs": macs, "params": sum(p.numel() for p in res.net.parameters()),
        "epochs_run": res.head_epochs, "stopped_early": False,
        "seg_steps": res.seg_steps, "seg_seconds": res.seg_seconds,
        "train_seconds": res.seconds, "val_threshold": res.threshold,
        "val_clip_f1": res.val_clip_f1, "val_window_acc": res.val_window_acc,
        "val_auc": res.val_auc, "frames": len(frames.x), "windows": len(frames.y),
        "sha256": stamped.sha256, "width": scfg.width, "tta_flip": scfg.tta_flip,
        "heads": scfg.heads, "head_thresholds": res.thresholds,
        "motion": scfg.motion,
        "seg_forward": res.seg_forward,
        "history": res.history,
    }  # fmt: skip


def _distil(cfg: BuildConfig, out: Path, progress: bool) -> dict[str, Any]:
    from models.training.dataset import synth_pool_windows
    from models.training.dmd import distill

    rep = distill(
        out / "edge.onnx", out / "cloud.onnx",
        synth_pool_windows(_seeds(POOL_BASE, cfg.pool_clips), cfg.train_preset,
                           workers=cfg.workers, codec=cfg.codec, progress=progress),
        out / "switcher.onnx", offload_rate=cfg.offload_rate, seed=cfg.seed,
        version=VERSION, progress=progress,
    )  # fmt: skip
    info = {k: v for k, v in asdict(rep).items() if k not in ("path", "feature_names")}
    info["n_features"] = len(rep.feature_names)
    return info


def _fresh_check(cfg: BuildConfig, out: Path, progress: bool) -> dict[str, Any]:
    from models.runtime.onnx_models import EdgeModel, Switcher
    from models.training.dataset import synth_pool_windows

    edge = EdgeModel.load(out / "edge.onnx")
    switcher = Switcher.load(out / "switcher.onnx")
    offloads: list[bool] = []
    fresh = synth_pool_windows(_seeds(FRESH_BASE, cfg.fresh_pool_clips), cfg.train_preset,
                               workers=cfg.workers, codec=cfg.codec, progress=progress)  # fmt: skip
    for w in _chain_flush(fresh, [], 32):
        offloads.extend(switcher.offload(edge.predict(w)).tolist())
    achieved = float(np.mean(offloads))
    print(f"[build] fresh pool: switcher offloads {achieved:.1%} of {len(offloads)} windows "
          f"(target {cfg.offload_rate:.0%})")  # fmt: skip
    return {"windows": len(offloads), "offload_rate": achieved, "target": cfg.offload_rate,
            "within_3_points": abs(achieved - cfg.offload_rate) <= 0.03}  # fmt: skip


def _chain_flush(
    it: Iterator[np.ndarray], buf: list[np.ndarray], size: int
) -> Iterator[list[np.ndarray]]:
    for w in it:
        buf.append(w)
        if len(buf) >= size:
            yield list(buf)
            buf.clear()
    if buf:
        yield list(buf)
        buf.clear()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.training.build_zoo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("models/zoo"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few minutes")
    parser.add_argument("--heldout-dir", type=Path, default=None,
                        help="clip folder for held-out clips (default data/heldout, "
                             "data/heldout-quick with --quick)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--note", default="", help="free text for the model card's build notes")
    parser.add_argument("--edge-epochs", type=int, default=None,
                        help="epochs of the edge's temporal head (default 60)")  # fmt: skip
    for role in ("edge", "cloud"):  # stage A: the recipe's steps, and a cap on its minutes
        parser.add_argument(f"--{role}-steps", type=int, default=None,
                            help=f"{role} stage A steps (default {getattr(FULL, f'{role}_seg_steps')})")  # fmt: skip
        parser.add_argument(f"--{role}-minutes", type=float, default=None,
                            help=f"{role} stage A cap, minutes (default {getattr(FULL, f'{role}_seg_minutes'):g})")  # fmt: skip
    parser.add_argument("--cloud-epochs", type=int, default=None,
                        help="epochs of the cloud's temporal head (default 60)")  # fmt: skip
    parser.add_argument("--cloud-bg-swap", type=float, default=None,
                        help="share of the cloud segmenter's training frames with a swapped "
                             f"background (default {FULL.cloud_bg_swap})")  # fmt: skip
    parser.add_argument("--cloud-motion", action=argparse.BooleanOptionalAction, default=None,
                        help="the cloud's segmenter also sees each frame minus its window's "
                             f"mean (default {'on' if FULL.cloud_motion else 'off'})")  # fmt: skip
    parser.add_argument("--cloud-heads", type=int, default=None,
                        help="temporal heads the cloud averages (default "
                             f"{FULL.cloud_heads})")  # fmt: skip
    parser.add_argument("--seed", type=int, default=None,
                        help="training and distillation seed (default 0); held-out F1 moves by "
                             "several points between seeds (docs/MODEL_EXPERIMENTS.md)")  # fmt: skip
    parser.add_argument(
        "--train-clips",
        type=int,
        default=None,
        help=f"rendered training clips (default {FULL.train_clips})",
    )
    parser.add_argument(
        "--train-preset",
        type=preset_arg,
        default=None,
        help="preset of the training clips and DMD pools: train (default) or a "
        "*.json preset file for your own cameras (docs/PRESET_FILES.md)",
    )
    parser.add_argument(
        "--pool-clips",
        type=int,
        default=None,
        help=f"clips in the unlabeled DMD pool (default {FULL.pool_clips})",
    )
    parser.add_argument("--keep", choices=("edge", "cloud"), action="append", default=[],
                        help="with --resume-from: keep this trained model instead of "
                             "retraining it (repeatable)")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--predictions",
        type=Path,
        default=None,
        help="save held-out per-window predictions here (.npz, for analysis)",
    )
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="keep rendered training windows here and reuse them when the "
                             "settings match (default: none, always render)")  # fmt: skip
    parser.add_argument("--resume-from", choices=STAGES[1:], default=None,
                        help="rerun from this stage on, reusing earlier outputs in --out "
                             "(stages before 'cloud' need the train render again)")  # fmt: skip
    parser.add_argument("--card-only", action="store_true",
                        help="only rewrite MODEL_CARD.md from build_summary.json and "
                             "evaluation.json in --out (no training, no evaluation)")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.card_only:
        from models.evaluation.model_card import write_model_card

        summary = json.loads((args.out / "build_summary.json").read_text())
        report = json.loads((args.out / "evaluation.json").read_text())
        write_model_card(args.out / "MODEL_CARD.md", summary, report)
        print(f"[build] rewrote {args.out / 'MODEL_CARD.md'}")
        return 0
    cfg = QUICK if args.quick else FULL
    if args.workers:
        cfg = replace(cfg, workers=args.workers)
    if args.edge_epochs:
        cfg = replace(cfg, edge_head_epochs=args.edge_epochs)
    for role in ("edge", "cloud"):
        for knob in ("steps", "minutes"):
            if getattr(args, f"{role}_{knob}"):
                cfg = replace(cfg, **{f"{role}_seg_{knob}": getattr(args, f"{role}_{knob}")})
    if args.cloud_epochs:
        cfg = replace(cfg, cloud_head_epochs=args.cloud_epochs)
    if args.cloud_bg_swap is not None:
        cfg = replace(cfg, cloud_bg_swap=args.cloud_bg_swap)
    if args.cloud_motion is not None:
        cfg = replace(cfg, cloud_motion=args.cloud_motion)
    if args.cloud_heads is not None:
        if args.cloud_heads < 1:
            parser.error("--cloud-heads must be at least 1")
        cfg = replace(cfg, cloud_heads=args.cloud_heads)
    if args.seed is not None:
        cfg = replace(cfg, seed=args.seed)
    if args.train_clips:
        cfg = replace(cfg, train_clips=args.train_clips)
    if args.pool_clips:
        cfg = replace(cfg, pool_clips=args.pool_clips)
    if args.train_preset:
        cfg = replace(cfg, train_preset=args.train_preset)
    if args.keep and not args.resume_from:
        parser.error("--keep needs --resume-from")
    heldout = args.heldout_dir or Path("data/heldout-quick" if args.quick else "data/heldout")
    build(
        args.out,
        cfg,
        heldout,
        progress=not args.no_progress,
        resume_from=args.resume_from,
        cache_dir=args.cache_dir,
        predictions_out=args.predictions,
        keep=tuple(args.keep),
        note=args.note,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
