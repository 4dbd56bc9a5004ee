"""Contact sheet: a PNG grid of synthetic clips for a person to judge at a glance.

Inputs: base seed, preset, number of clips (rows) and frames per clip (columns), output
path. Outputs: a PNG; each row is one clip (after the H.264 round trip, i.e. what models
see), captioned with index, action, label and fall times; frames inside the fall's
descent get a red border, frames after impact an orange one.

Guarantees: rows are clips ``0..rows-1`` of the same dataset ``write_dataset`` would write
with that seed and preset. Failure modes: ``OSError`` if the path is not writable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from models.synth.clip import ClipMeta, render_clip
from models.synth.codec import codec_round_trip
from models.synth.dataset import clip_seed

__all__ = ["contact_sheet", "draw_sheet"]

_CAPTION_H = 14
_SCALE = 2


def draw_sheet(
    clips: list[tuple[NDArray[np.uint8], ClipMeta]], columns: int, fps: float
) -> Image.Image:
    """Lay out ``columns`` evenly spaced frames of each clip, one captioned row per clip."""
    h, w = clips[0][0].shape[1:3]
    cell_w, cell_h = w * _SCALE, h * _SCALE
    sheet = Image.new(
        "RGB", (columns * (cell_w + 2), len(clips) * (cell_h + _CAPTION_H + 2)), (20, 20, 20)
    )
    draw = ImageDraw.Draw(sheet)
    for row, (frames, meta) in enumerate(clips):
        y0 = row * (cell_h + _CAPTION_H + 2)
        caption = f"#{row} {meta.action}  [{meta.label}]  seed={meta.seed % 100000}"
        if meta.fall_start_s is not None:
            caption += f"  descent {meta.fall_start_s:.2f}-{meta.fall_end_s:.2f}s"
        draw.text((3, y0 + 1), caption, fill=(235, 235, 235))
        idx = np.linspace(0, len(frames) - 1, columns).round().astype(int)
        for col, k in enumerate(idx):
            x0 = col * (cell_w + 2)
            img = Image.fromarray(frames[k]).resize((cell_w, cell_h), Image.Resampling.NEAREST)
            sheet.paste(img, (x0, y0 + _CAPTION_H))
            t = k / fps
            draw.text((x0 + 3, y0 + _CAPTION_H + 2), f"{t:.1f}s", fill=(255, 255, 0))
            if meta.fall_start_s is not None and meta.fall_end_s is not None:
                colour = None
                if meta.fall_start_s <= t <= meta.fall_end_s:
                    colour = (230, 30, 30)
                elif t > meta.fall_end_s:
                    colour = (240, 150, 20)
                if colour is not None:
                    draw.rectangle(
                        [x0, y0 + _CAPTION_H, x0 + cell_w - 1, y0 + _CAPTION_H + cell_h - 1],
                        outline=colour,
                        width=2,
                    )
    return sheet


def contact_sheet(
    out: str | Path,
    *,
    seed: int,
    preset: str = "train",
    rows: int = 6,
    columns: int = 8,
    actions: list[str] | None = None,
) -> Path:
    """Render ``rows`` clips (optionally forcing ``actions``) and save the sheet as PNG."""
    clips: list[tuple[NDArray[np.uint8], ClipMeta]] = []
    for i in range(rows):
        action = actions[i % len(actions)] if actions else None
        frames, meta = render_clip(clip_seed(seed, i), preset=preset, action=action)
        clips.append((codec_round_trip(frames, meta.fps, meta.crf), meta))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_sheet(clips, columns, clips[0][1].fps).save(path)
    return path
