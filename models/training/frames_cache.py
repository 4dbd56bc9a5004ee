"""The training clips' frames, rendered once for both video models and cached on disk.

Inputs: a `BuildConfig` (clip count, train preset, codec, workers), optionally a cache
folder. Outputs: `render_train_frames` → a `models.training.dataset.ClipFrames` (every frame
at the cloud's size with the renderer's silhouettes and joints), and the cache key
(`train_cache_key`) it is stored under: `<cache>/train-<key>/frames_*.npy`, `key.json`, `done`.
Guarantees: the key covers the clip count, seeds, codec, input spec, the train preset's
every range and the code that decides what a frame holds (`data_code_version`: the
renderer, windowing, clip decoding, preprocessing, dataset assembly), so any change
re-renders instead of reusing stale arrays; plain .npy, no pickle; a cache folder counts
only once its `done` file is written.
Failure modes: rendering errors propagate; `OSError` when the cache cannot be written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from models.synth.presets import get_preset, preset_json
from models.training.recipe import TRAIN_BASE, BuildConfig

__all__ = ["DATA_CODE", "data_code_version", "render_train_frames", "train_cache_key"]

# Besides models/synth/*.py, the files (relative to models/) that decide what a cached
# training window holds.
DATA_CODE = ("runtime/windows.py", "runtime/clips.py", "runtime/preprocess.py",
             "training/dataset.py")  # fmt: skip


def data_code_version(root: Path | None = None) -> str:
    """sha256 (12 hex) of the code that decides what a cached training window holds: the
    generator, windowing, clip decoding, preprocessing and dataset assembly
    (`root`, default models/: `synth/*.py` and `DATA_CODE`).
    Part of the cache key, so changing any of them re-renders instead of reusing stale arrays."""
    import hashlib

    root = Path(__file__).resolve().parents[1] if root is None else root
    files = sorted((root / "synth").glob("*.py")) + [root / name for name in DATA_CODE]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def train_cache_key(cfg: BuildConfig) -> tuple[str, str]:
    """The training frames' cache key (16 hex) and the JSON it hashes: clip count, seeds,
    codec, the generator's code, the input spec and every range of the train preset, so a
    changed preset file re-renders instead of reusing another preset's frames."""
    import hashlib

    from models.training.silhouette import TARGET_STRIDE, silhouette_spec

    key_src = json.dumps({"n": cfg.train_clips, "base": TRAIN_BASE, "codec": cfg.codec,
                          "code": data_code_version(), "spec": silhouette_spec().to_json(),
                          "stride": TARGET_STRIDE,
                          "preset": preset_json(get_preset(cfg.train_preset))},
                         sort_keys=True)  # fmt: skip
    return hashlib.sha256(key_src.encode()).hexdigest()[:16], key_src


def render_train_frames(cfg: BuildConfig, progress: bool, cache_dir: Path | None) -> Any:
    """Render the training clips once for both models: every frame at the cloud's size with
    the generator's silhouettes and joints (`models.training.dataset.ClipFrames`; the edge's inputs
    are area-averaged from them), or load them from `cache_dir` when rendered before with
    exactly the same settings (plain .npy arrays, no pickle). Returns the ClipFrames."""
    from models.training.dataset import FRAME_FIELDS, ClipFrames, clip_seeds, synth_clipframes
    from models.training.silhouette import TARGET_STRIDE, silhouette_spec

    spec = silhouette_spec()
    key, key_src = train_cache_key(cfg)
    folder = cache_dir / f"train-{key}" if cache_dir else None
    if folder is not None and (folder / "done").exists():
        print(f"[build] train frames loaded from cache {folder}")
        return ClipFrames(*(np.load(folder / f"frames_{f}.npy", allow_pickle=False)
                            for f in FRAME_FIELDS))  # fmt: skip
    frames = synth_clipframes(clip_seeds(TRAIN_BASE, cfg.train_clips), cfg.train_preset, spec,
                              workers=cfg.workers, codec=cfg.codec, target_stride=TARGET_STRIDE,
                              progress=progress)  # fmt: skip
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for f in FRAME_FIELDS:
            np.save(folder / f"frames_{f}.npy", getattr(frames, f), allow_pickle=False)
        (folder / "key.json").write_text(key_src)
        (folder / "done").write_text("ok")
    return frames
