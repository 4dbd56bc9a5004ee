"""The `fallwatch.*` metadata convention inside every ONNX model (docs/CONTRACTS.md).

Inputs: an `onnx.ModelProto` (or serialized bytes). Outputs: a frozen `ModelMeta`.
Guarantees:
- values are written as strings, JSON where structured, and read back with
  `json.loads` / `float` / `int` only (never eval);
- `fallwatch.sha256` is the sha256 of the model serialized with that key absent;
  `stamp_metadata` writes it last and `verify_sha256` recomputes it, so any edit of
  weights or metadata after export is detected;
- extra keys (e.g. `fallwatch.calibration`, `fallwatch.decision`) are kept in
  `ModelMeta.extra` so newer files still load.
Failure modes: `ModelMetadataError` for missing/malformed keys, `ModelLoadError`
for a sha256 mismatch or unparsable bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import onnx

from models.runtime.errors import ModelLoadError, ModelMetadataError

__all__ = [
    "PREFIX",
    "InputSpec",
    "ModelMeta",
    "compute_sha256",
    "meta_to_props",
    "parse_model",
    "read_metadata",
    "stamp_metadata",
    "verify_sha256",
]

PREFIX = "fallwatch."
SHA_KEY = PREFIX + "sha256"
ROLES = ("edge", "cloud", "switcher")
Role = Literal["edge", "cloud", "switcher"]


@dataclass(frozen=True)
class InputSpec:
    """What an edge/cloud model expects: `frames` frames of `height`x`width`,
    `color` "gray" (C=1) or "rgb" (C=3), resampled from windows at `fps`,
    laid out NCTHW, pixel values divided by `scale`."""

    frames: int
    height: int
    width: int
    color: Literal["gray", "rgb"]
    fps: float = 8.0
    layout: str = "NCTHW"
    scale: float = 255.0
    resample: str = "box"  # PIL filter for the spatial resize: box | nearest | bilinear

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    def to_json(self) -> str:
        return json.dumps(
            {
                "frames": self.frames,
                "height": self.height,
                "width": self.width,
                "color": self.color,
                "fps": self.fps,
                "layout": self.layout,
                "scale": self.scale,
                "resample": self.resample,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> InputSpec:
        try:
            raw = json.loads(text)
            color = str(raw["color"])
            if color not in ("gray", "rgb"):
                raise ValueError(f"color must be gray or rgb, got {color!r}")
            spec = cls(
                frames=int(raw["frames"]),
                height=int(raw["height"]),
                width=int(raw["width"]),
                color="gray" if color == "gray" else "rgb",
                fps=float(raw.get("fps", 8.0)),
                layout=str(raw.get("layout", "NCTHW")),
                scale=float(raw.get("scale", 255.0)),
                resample=str(raw.get("resample", "box")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelMetadataError(f"bad fallwatch.input {text!r}: {exc}") from exc
        if spec.layout != "NCTHW":
            raise ModelMetadataError(f"unsupported layout {spec.layout!r}; only NCTHW")
        if spec.resample not in ("box", "nearest", "bilinear"):
            raise ModelMetadataError(f"unsupported resample {spec.resample!r}")
        if min(spec.frames, spec.height, spec.width) < 1 or spec.scale <= 0:
            raise ModelMetadataError(f"non-positive sizes in fallwatch.input {text!r}")
        return spec


@dataclass(frozen=True)
class ModelMeta:
    """Everything a fallwatch model says about itself."""

    role: Role
    name: str
    version: str
    labels: tuple[str, ...] = ("no_fall", "fall")
    input: InputSpec | None = None  # edge/cloud only
    features: tuple[str, ...] = ()  # switcher only
    threshold: float | None = None  # switcher only
    target_offload_rate: float | None = None  # switcher only
    seed: int | None = None
    trained_at: str = ""
    flops: int | None = None  # multiply-adds per window
    sha256: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    def extra_json(self, key: str) -> Any:
        """Parse an extra `fallwatch.<key>` value as JSON; None when absent."""
        text = self.extra.get(PREFIX + key)
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ModelMetadataError(f"{PREFIX}{key} is not JSON") from exc


def meta_to_props(meta: ModelMeta) -> dict[str, str]:
    """The string key/values written into `metadata_props` (without sha256)."""
    props: dict[str, str] = {
        PREFIX + "role": meta.role,
        PREFIX + "name": meta.name,
        PREFIX + "version": meta.version,
        PREFIX + "labels": json.dumps(list(meta.labels)),
        PREFIX + "trained_at": meta.trained_at,
    }
    if meta.input is not None:
        props[PREFIX + "input"] = meta.input.to_json()
    if meta.features:
        props[PREFIX + "features"] = json.dumps(list(meta.features))
    if meta.threshold is not None:
        props[PREFIX + "threshold"] = repr(float(meta.threshold))
    if meta.target_offload_rate is not None:
        props[PREFIX + "target_offload_rate"] = repr(float(meta.target_offload_rate))
    if meta.seed is not None:
        props[PREFIX + "seed"] = str(int(meta.seed))
    if meta.flops is not None:
        props[PREFIX + "flops"] = str(int(meta.flops))
    for key, value in meta.extra.items():
        if not key.startswith(PREFIX):
            raise ModelMetadataError(f"extra metadata key {key!r} lacks prefix {PREFIX!r}")
        props[key] = value
    return props


def _set_props(model: onnx.ModelProto, props: Mapping[str, str]) -> None:
    kept = [p for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    for p in kept:
        model.metadata_props.add(key=p.key, value=p.value)
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)


def compute_sha256(model: onnx.ModelProto) -> str:
    """sha256 of the model serialized with `fallwatch.sha256` absent (copy; input untouched)."""
    clone = onnx.ModelProto()
    clone.CopyFrom(model)
    kept = [(p.key, p.value) for p in clone.metadata_props if p.key != SHA_KEY]
    del clone.metadata_props[:]
    for key, value in kept:
        clone.metadata_props.add(key=key, value=value)
    return hashlib.sha256(clone.SerializeToString(deterministic=True)).hexdigest()


def stamp_metadata(model: onnx.ModelProto, meta: ModelMeta) -> str:
    """Write `meta` into `model.metadata_props` in place, then its sha256; return the hash."""
    _set_props(model, meta_to_props(meta))
    digest = compute_sha256(model)
    model.metadata_props.add(key=SHA_KEY, value=digest)
    return digest


def verify_sha256(model: onnx.ModelProto) -> str:
    """Return the stored sha256 after checking it; ModelLoadError on mismatch/absence."""
    stored: str | None = {p.key: p.value for p in model.metadata_props}.get(SHA_KEY)
    if not stored:
        raise ModelLoadError("model has no fallwatch.sha256")
    actual = compute_sha256(model)
    if actual != stored:
        raise ModelLoadError(f"sha256 mismatch: metadata says {stored}, file hashes to {actual}")
    return stored


def parse_model(data: bytes) -> onnx.ModelProto:
    """Parse serialized ONNX bytes; ModelLoadError when they are not a model."""
    try:
        model = onnx.ModelProto()
        model.ParseFromString(data)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise ModelLoadError(f"not an ONNX model: {exc}") from exc
    if not model.graph.node:
        raise ModelLoadError("ONNX model has an empty graph")
    return model


def _json_list(props: Mapping[str, str], key: str) -> tuple[str, ...]:
    text = props.get(PREFIX + key)
    if text is None:
        return ()
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ModelMetadataError(f"{PREFIX}{key} is not JSON: {text!r}") from exc
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ModelMetadataError(f"{PREFIX}{key} must be a JSON list of strings")
    return tuple(value)


def _opt_float(props: Mapping[str, str], key: str) -> float | None:
    text = props.get(PREFIX + key)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise ModelMetadataError(f"{PREFIX}{key} is not a number: {text!r}") from exc


def _opt_int(props: Mapping[str, str], key: str) -> int | None:
    value = _opt_float(props, key)
    return None if value is None else int(value)


_KNOWN = {
    "role", "name", "version", "labels", "input", "features", "threshold",
    "target_offload_rate", "seed", "trained_at", "flops", "sha256",
}  # fmt: skip


def read_metadata(model: onnx.ModelProto) -> ModelMeta:
    """Read `fallwatch.*` props into a ModelMeta (does not verify the hash)."""
    props = {p.key: p.value for p in model.metadata_props}
    role = props.get(PREFIX + "role")
    if role not in ROLES:
        raise ModelMetadataError(f"fallwatch.role must be one of {ROLES}, got {role!r}")
    input_text = props.get(PREFIX + "input")
    if role in ("edge", "cloud") and input_text is None:
        raise ModelMetadataError(f"{role} model lacks fallwatch.input")
    features = _json_list(props, "features")
    if role == "switcher" and not features:
        raise ModelMetadataError("switcher model lacks fallwatch.features")
    labels = _json_list(props, "labels") or ("no_fall", "fall")
    extra = {
        k: v for k, v in props.items() if k.startswith(PREFIX) and k[len(PREFIX) :] not in _KNOWN
    }
    return ModelMeta(
        role=cast(Role, role),  # checked against ROLES above
        name=props.get(PREFIX + "name", ""),
        version=props.get(PREFIX + "version", ""),
        labels=labels,
        input=InputSpec.from_json(input_text) if input_text is not None else None,
        features=features,
        threshold=_opt_float(props, "threshold"),
        target_offload_rate=_opt_float(props, "target_offload_rate"),
        seed=_opt_int(props, "seed"),
        trained_at=props.get(PREFIX + "trained_at", ""),
        flops=_opt_int(props, "flops"),
        sha256=props.get(SHA_KEY, ""),
        extra=extra,
    )
