"""`fallwatch train | distill | evaluate | synth` — the ML engineer's commands.

`add_model_commands(subparsers)` registers them on the `fallwatch` parser
(streams/cli.py calls it). Each handler returns an exit code: 0 ok, 1 a
`ModelsError` (message printed to stderr), 2 bad arguments.
- train:    `fallwatch train --role edge|cloud --out M.onnx (--data DIR | --synth N)`
            trains on a labeled clip folder or on N synthetic clips, exports ONNX
            with metadata (PyTorch needed: `pip install fallwatch[train]`). Both models
            (models.training.silhouette) learn their per-frame stage from the generator's
            silhouettes and joints; on a folder of real footage, which has none, they keep
            a pretrained per-frame stage (`--segmenter`, default the zoo's
            `{role}_segmenter.npz`) and retrain only the temporal stage.
- distill:  `fallwatch distill --edge E --cloud C --data DIR --offload-rate R --out S.onnx`
            DMD on the folder's windows with labels ignored (a folder without
            labels.csv works: every video in it is used).
- evaluate: `fallwatch evaluate --data DIR [--offload-rate R] --json OUT --plot PNG`
            all policies side by side on a labeled clip folder.
- synth:    the synthetic generator's own command (models/synth/cli.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models import zoo_path
from models.runtime.errors import ModelsError
from models.training.recipe import (
    FULL,
    ROLE_DECISION,
    ROLE_HIDDEN,
    ROLE_SEG_BATCH,
    TRAIN_BASE,
    VERSION,
)

__all__ = ["add_model_commands"]


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"offload rate must be in (0, 1), got {value}")
    return value


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from models.runtime.metadata import ModelMeta
    from models.training.dataset import clip_seeds, folder_clipframes, synth_clipframes
    from models.training.export import export_video_model
    from models.training.nets import ExportWrapper, count_macs
    from models.training.silhouette import (
        TARGET_STRIDE,
        SilhouetteConfig,
        edge_silhouette_spec,
        save_segmenter,
        silhouette_spec,
        train_silhouette_cloud,
    )

    if (args.data is None) == (args.synth is None):
        print("train: give exactly one of --data DIR or --synth N", file=sys.stderr)
        return 2
    if args.heads is not None and args.heads < 1:
        print("train: --heads must be at least 1", file=sys.stderr)
        return 2
    role = args.role
    edge = role == "edge"
    spec = edge_silhouette_spec() if edge else silhouette_spec()
    segmenter = None
    if args.data is not None:
        segmenter = args.segmenter or zoo_path(role).with_name(f"{role}_segmenter.npz")
        frames = folder_clipframes(args.data, silhouette_spec())
    else:
        frames = synth_clipframes(clip_seeds(args.seed_data, args.synth), args.preset,
                                  silhouette_spec(), workers=args.workers,
                                  target_stride=TARGET_STRIDE)  # fmt: skip
    cfg = SilhouetteConfig(
        seg_steps=FULL.edge_seg_steps if edge else FULL.cloud_seg_steps,
        seg_minutes=args.max_minutes or (FULL.edge_seg_minutes if edge else FULL.cloud_seg_minutes),
        head_epochs=args.epochs, width=args.width or (FULL.edge_width if edge else FULL.cloud_width),
        hidden=ROLE_HIDDEN[role], seg_batch=ROLE_SEG_BATCH[role], decision=ROLE_DECISION[role],
        role=role, tta_flip=not edge and not args.no_tta, seed=args.seed, threads=args.threads,
        motion=not edge and (FULL.cloud_motion if args.motion is None else args.motion),
        heads=args.heads if args.heads is not None else (1 if edge else FULL.cloud_heads),
    )  # fmt: skip
    res = train_silhouette_cloud(frames, spec, cfg, segmenter=segmenter)
    example = torch.zeros(1, spec.channels, spec.frames, spec.height, spec.width)
    macs = count_macs(ExportWrapper(res.net, edge), example)
    meta = ModelMeta(
        role=role, name=args.name or f"fallwatch-{role}", version=args.version, input=spec,
        seed=args.seed, trained_at=datetime.now(UTC).isoformat(timespec="seconds"), flops=macs,
        extra={"fallwatch.decision": json.dumps({"val_threshold": res.threshold,
                                                 "head_thresholds": res.thresholds,
                                                 "val_clip_f1": res.val_clip_f1})},
    )  # fmt: skip
    stamped = export_video_model(res.net, meta, args.out, with_embedding=edge)
    if segmenter is None:
        save_segmenter(res.net, args.out.with_name(args.out.stem + "_segmenter.npz"),
                       model_sha256=stamped.sha256)  # fmt: skip
    print(f"train: wrote {args.out} ({macs / 1e6:.1f} M multiply-adds/window, "
          f"sha256 {stamped.sha256[:12]}...)")  # fmt: skip
    return 0


def _cmd_distill(args: argparse.Namespace) -> int:
    from models.training.dataset import folder_pool_windows
    from models.training.dmd import distill

    distill(args.edge, args.cloud, folder_pool_windows(args.data), args.out,
            offload_rate=args.offload_rate, seed=args.seed)  # fmt: skip
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from models.evaluation.evaluate import evaluate_folder

    evaluate_folder(args.data, args.edge, args.cloud, args.switcher,
                    offload_rate=args.offload_rate, json_out=args.json, plot_out=args.plot,
                    predictions_out=args.predictions)  # fmt: skip
    return 0


def _guarded(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except ModelsError as exc:
            print(f"fallwatch {args.command}: {exc}", file=sys.stderr)
            return 1

    return run


def _preset(value: str) -> str:
    """argparse type of `train --preset`; imports the generator only when the option is given."""
    from models.synth.presets import preset_arg

    return preset_arg(value)


def add_model_commands(subparsers: Any) -> None:
    """Register train, distill, evaluate (and synth when available) on `subparsers`."""
    p = subparsers.add_parser("train", help="Train the edge or cloud model, export ONNX.")
    p.add_argument("--role", choices=("edge", "cloud"), required=True)
    p.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    p.add_argument("--data", type=Path, help="labeled clip folder (labels.csv)")
    p.add_argument("--synth", type=int, metavar="N", help="train on N synthetic clips instead")
    p.add_argument("--preset", type=_preset, default="train",
                   help="synthetic preset (with --synth): train, heldout, demo or a *.json "
                        "preset file")  # fmt: skip
    p.add_argument("--seed-data", type=int, default=TRAIN_BASE, help="synthetic base seed")
    p.add_argument("--epochs", type=int, default=FULL.cloud_head_epochs,
                   help="epochs of the temporal stage")  # fmt: skip
    p.add_argument("--width", type=int, default=None, help="channel width (edge 8, cloud 16)")
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help=f"cap on the per-frame stage's minutes; it runs the recipe's steps (edge "
        f"{FULL.edge_seg_steps}, cloud {FULL.cloud_seg_steps}) unless the cap stops it first "
        f"(default edge {FULL.edge_seg_minutes:g}, cloud {FULL.cloud_seg_minutes:g})",
    )
    p.add_argument("--segmenter", type=Path, default=None,
                   help="with --data: pretrained per-frame stage (.npz; default the zoo's "
                        "edge_segmenter.npz / cloud_segmenter.npz)")  # fmt: skip
    p.add_argument("--no-tta", action="store_true", help="cloud: no test-time mirroring")
    p.add_argument(
        "--heads",
        type=int,
        default=None,
        help="temporal heads averaged (default: edge 1, cloud as `make models`)",
    )
    p.add_argument("--motion", action=argparse.BooleanOptionalAction, default=None,
                   help="cloud, with --synth: the segmenter also sees each frame minus its "
                        "window's mean (default: as `make models`); with --data it follows "
                        "the --segmenter file")  # fmt: skip
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workers", type=int, default=1, help="render processes (with --synth)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default=None)
    p.add_argument("--version", default=VERSION)
    p.set_defaults(handler=_guarded(_cmd_train))

    p = subparsers.add_parser(
        "distill", help="Train the DMD switcher on unlabeled windows and calibrate it."
    )
    p.add_argument("--edge", type=Path, required=True)
    p.add_argument("--cloud", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True,
                   help="folder of clips (labels, if any, are ignored)")  # fmt: skip
    p.add_argument("--offload-rate", type=_rate, default=0.2)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_guarded(_cmd_distill))

    p = subparsers.add_parser("evaluate", help="Compare routing policies on a labeled folder.")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--offload-rate", type=_rate, default=None,
                   help="default: the switcher's calibrated target")  # fmt: skip
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--plot", type=Path, default=None)
    p.add_argument("--predictions", type=Path, default=None,
                   help="also save per-window probabilities/scores/labels (.npz)")  # fmt: skip
    p.add_argument("--edge", type=Path, default=zoo_path("edge"))
    p.add_argument("--cloud", type=Path, default=zoo_path("cloud"))
    p.add_argument("--switcher", type=Path, default=zoo_path("switcher"))
    p.set_defaults(handler=_guarded(_cmd_evaluate))

    try:
        from models.synth.cli import add_synth_parser
    except ImportError:
        return
    add_synth_parser(subparsers)
