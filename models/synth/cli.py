"""Command line for the generator: ``fallwatch synth --out DIR --n N --seed S ...``.

Inputs: ``--out DIR`` (clip folder to write), ``--n`` clips, ``--seed``, ``--preset``
(train|heldout|far_night|demo or a ``*.json`` preset file, see ``docs/PRESET_FILES.md``),
``--size WxH`` and ``--fps`` of the clips (default 160x120 at 8 fps, what cameras send),
``--workers``, ``--preview PNG`` (contact sheet of the first clips; may be given without
``--out``). Outputs: the clip folder and/or the PNG; a one-line JSON
summary on stdout (clips, falls, seconds, clips per second).

``add_synth_parser(subparsers)`` registers the sub-command (its handler is in
``args.handler`` and ``args.func``); ``run_synth_cli(argv)`` parses and runs stand-alone
and returns the exit code. Failure modes: exit code 2 for bad arguments (argparse), 1 if
writing fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from models.synth.dataset import write_dataset
from models.synth.presets import PRESETS, preset_arg
from models.synth.preview import contact_sheet

__all__ = ["add_synth_parser", "run_synth", "run_synth_cli"]


_HELP = "generate synthetic fall / daily-activity clips"
_DESCRIPTION = (
    "Render synthetic clips (people falling or going about daily life in random rooms) as "
    "H.264 MP4 files plus labels.csv, and/or a contact-sheet PNG of the first clips. "
    "Presets: train, heldout (shifted camera/look/noise ranges), far_night (small people, "
    "dark rooms in IR night mode), demo, or a *.json preset "
    "file that changes some of a built-in preset's ranges (docs/PRESET_FILES.md)."
)


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", help="clip folder to write (clips/*.mp4 + labels.csv)")
    parser.add_argument("--n", type=int, default=100, help="number of clips (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument("--preset", type=preset_arg, default="train",
                        help=f"{', '.join(sorted(PRESETS))} or a *.json preset file "
                             "(default train)")  # fmt: skip
    parser.add_argument(
        "--size",
        type=_size_arg,
        default=(160, 120),
        metavar="WxH",
        help="frame size of the clips (default 160x120)",
    )
    parser.add_argument("--fps", type=float, default=8.0, help="frame rate (default 8)")
    parser.add_argument("--workers", type=int, default=1, help="render processes (default 1)")
    parser.add_argument("--preview", help="also write a contact sheet PNG of the first clips")
    parser.add_argument("--preview-rows", type=int, default=6)
    # Both names: the project CLI dispatches on ``handler``, plain argparse users on ``func``.
    parser.set_defaults(func=run_synth, handler=run_synth)


def _size_arg(value: str) -> tuple[int, int]:
    """``"320x240"`` -> ``(320, 240)``; even sides from 32 to 1920 (H.264 needs even sides)."""
    w, sep, h = value.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit()):
        raise argparse.ArgumentTypeError(f"size {value!r}: expected WxH, e.g. 320x240")
    width, height = int(w), int(h)
    if not (32 <= width <= 1920 and 32 <= height <= 1920) or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"size {value!r}: sides must be even, 32 to 1920")
    return width, height


def add_synth_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``synth`` on an ``argparse`` sub-parsers object; returns the new parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "synth", help=_HELP, description=_DESCRIPTION
    )
    _configure(parser)
    return parser


def run_synth(args: argparse.Namespace) -> int:
    """Run the parsed ``synth`` command; returns the process exit code."""
    if args.out is None and args.preview is None:
        print("synth: give --out and/or --preview", file=sys.stderr)
        return 2
    if args.n < 0 or args.workers < 1 or not 1.0 <= args.fps <= 60.0:
        print("synth: --n must be >= 0, --workers >= 1 and --fps 1 to 60", file=sys.stderr)
        return 2
    width, height = args.size
    summary: dict[str, Any] = {"preset": args.preset, "seed": args.seed,
                               "size": f"{width}x{height}", "fps": args.fps}  # fmt: skip
    try:
        if args.out is not None:
            t0 = time.perf_counter()
            with tqdm(total=args.n, desc="synth", unit="clip", file=sys.stderr) as bar:
                metas = write_dataset(args.out, args.n, args.seed, args.preset, args.workers,
                                      width=width, height=height, fps=args.fps,
                                      progress=lambda done, _total: bar.update(1))  # fmt: skip
            dt = time.perf_counter() - t0
            summary.update(
                out=args.out,
                clips=len(metas),
                falls=sum(m.label == "fall" for m in metas),
                seconds=round(dt, 2),
                clips_per_s=round(len(metas) / max(dt, 1e-9), 2),
            )
        if args.preview is not None:
            path = contact_sheet(
                args.preview, seed=args.seed, preset=args.preset, rows=args.preview_rows
            )
            summary["preview"] = str(path)
    except OSError as exc:
        print(f"synth: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


def run_synth_cli(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point: parse ``argv`` and run."""
    parser = argparse.ArgumentParser(prog="fallwatch synth", description=_DESCRIPTION)
    _configure(parser)
    return run_synth(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(run_synth_cli())
