"""`fallwatch.*` metadata of the pose models (role `pose`), on top of models.runtime.metadata.

Inputs: an `onnx.ModelProto`. Outputs: a frozen `PoseModelMeta`.
Guarantees: the same convention as the edge/cloud/switcher files (docs/CONTRACTS.md):
string values, JSON where structured, read back with `json.loads`/`int`/`float` only;
`fallwatch.sha256` is `models.runtime.metadata.compute_sha256` of the file without that key,
written last by `stamp_pose_metadata` and checked by `models.runtime.metadata.verify_sha256`.
Keys: `role` ("pose"), `name`, `version`, `pose_kind` (the decoder: "movenet_multipose"),
`pose_input` (JSON `PoseInputSpec`), `keypoints` (JSON names), `max_people`, `source`
(JSON: package, version, wheel and member sha256s, upstream URL), `licence`, `converter`
(JSON: tools and opset), `parity` (JSON: max |diff| against the original runtime and
the bound it passed). Unknown `fallwatch.*` keys are kept in `extra`.
Failure modes: `ModelMetadataError` for a missing, malformed or non-pose key set.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import onnx

from models.runtime.errors import ModelMetadataError
from models.runtime.metadata import PREFIX, SHA_KEY, compute_sha256

__all__ = [
    "COCO_KEYPOINTS",
    "POSE_ROLE",
    "PoseInputSpec",
    "PoseModelMeta",
    "read_pose_metadata",
    "stamp_pose_metadata",
]

POSE_ROLE = "pose"
# COCO order, as MoveNet emits them; "left" is the person's left.
COCO_KEYPOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip


@dataclass(frozen=True)
class PoseInputSpec:
    """The image tensor a pose model takes: `[batch, H, W, 3]` RGB `dtype`, pixel values
    0..255 mapped linearly onto `value_range`.

    When `fixed`, H = W = `long_side` exactly (BlazePose); otherwise H and W are free but
    must be multiples of `multiple` (MultiPose fails on others) and `long_side` is the
    size the long side is resized to by default. `batch` 0 means any.
    """

    dtype: str = "uint8"
    batch: int = 1
    multiple: int = 32
    long_side: int = 256
    layout: str = "NHWC"
    color: str = "rgb"
    fixed: bool = False
    value_range: tuple[float, float] = (0.0, 255.0)

    def to_json(self) -> str:
        return json.dumps(
            {"dtype": self.dtype, "batch": self.batch, "multiple": self.multiple,
             "long_side": self.long_side, "layout": self.layout, "color": self.color,
             "fixed": self.fixed, "value_range": list(self.value_range)}
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> PoseInputSpec:
        try:
            raw = json.loads(text)
            spec = cls(
                dtype=str(raw["dtype"]),
                batch=int(raw["batch"]),
                multiple=int(raw["multiple"]),
                long_side=int(raw["long_side"]),
                layout=str(raw["layout"]),
                color=str(raw["color"]),
                fixed=bool(raw.get("fixed", False)),
                value_range=(float(raw.get("value_range", [0, 255])[0]),
                             float(raw.get("value_range", [0, 255])[1])),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelMetadataError(f"bad {PREFIX}pose_input {text!r}: {exc}") from exc
        if spec.layout != "NHWC" or spec.color != "rgb" or spec.dtype not in ("uint8", "float32"):
            raise ModelMetadataError(f"unsupported pose input {text!r}")
        if spec.multiple < 1 or spec.long_side < spec.multiple or spec.batch < 0:
            raise ModelMetadataError(f"bad sizes in pose input {text!r}")
        return spec


@dataclass(frozen=True)
class PoseModelMeta:
    """Everything a fallwatch pose model file says about itself."""

    name: str
    kind: str
    version: str
    input: PoseInputSpec
    keypoints: tuple[str, ...] = COCO_KEYPOINTS
    max_people: int = 6
    source: Mapping[str, Any] = field(default_factory=dict)
    licence: str = ""
    converter: Mapping[str, Any] = field(default_factory=dict)
    parity: Mapping[str, Any] = field(default_factory=dict)
    sha256: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


def _props(meta: PoseModelMeta) -> dict[str, str]:
    props = {
        PREFIX + "role": POSE_ROLE,
        PREFIX + "name": meta.name,
        PREFIX + "pose_kind": meta.kind,
        PREFIX + "version": meta.version,
        PREFIX + "pose_input": meta.input.to_json(),
        PREFIX + "keypoints": json.dumps(list(meta.keypoints)),
        PREFIX + "max_people": str(int(meta.max_people)),
        PREFIX + "source": json.dumps(dict(meta.source), sort_keys=True),
        PREFIX + "licence": meta.licence,
        PREFIX + "converter": json.dumps(dict(meta.converter), sort_keys=True),
        PREFIX + "parity": json.dumps(dict(meta.parity), sort_keys=True),
    }
    for key, value in meta.extra.items():
        if not key.startswith(PREFIX):
            raise ModelMetadataError(f"extra metadata key {key!r} lacks prefix {PREFIX!r}")
        props[key] = value
    return props


def stamp_pose_metadata(model: onnx.ModelProto, meta: PoseModelMeta) -> str:
    """Write `meta` into `model.metadata_props` in place (replacing every `fallwatch.*`
    key), then its sha256 last; return the hash."""
    kept = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    for key, value in [*kept, *_props(meta).items()]:
        model.metadata_props.add(key=key, value=value)
    digest = compute_sha256(model)
    model.metadata_props.add(key=SHA_KEY, value=digest)
    return digest


def _json(props: Mapping[str, str], key: str, default: Any) -> Any:
    text = props.get(PREFIX + key)
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ModelMetadataError(f"{PREFIX}{key} is not JSON: {text!r}") from exc


_KNOWN = {
    "role", "name", "pose_kind", "version", "pose_input", "keypoints", "max_people",
    "source", "licence", "converter", "parity", "sha256",
}  # fmt: skip


def read_pose_metadata(model: onnx.ModelProto) -> PoseModelMeta:
    """Read the `fallwatch.*` props of a pose model (does not verify the hash)."""
    props = {p.key: p.value for p in model.metadata_props}
    role = props.get(PREFIX + "role")
    if role != POSE_ROLE:
        raise ModelMetadataError(f"{PREFIX}role must be {POSE_ROLE!r}, got {role!r}")
    for key in ("name", "pose_kind", "pose_input"):
        if PREFIX + key not in props:
            raise ModelMetadataError(f"pose model lacks {PREFIX}{key}")
    keypoints = _json(props, "keypoints", list(COCO_KEYPOINTS))
    if not isinstance(keypoints, list) or not all(isinstance(k, str) for k in keypoints):
        raise ModelMetadataError(f"{PREFIX}keypoints must be a JSON list of strings")
    parts = {k: _json(props, k, {}) for k in ("source", "converter", "parity")}
    for key, value in parts.items():
        if not isinstance(value, dict):
            raise ModelMetadataError(f"{PREFIX}{key} must be a JSON object")
    try:
        max_people = int(props.get(PREFIX + "max_people", "6"))
    except ValueError as exc:
        raise ModelMetadataError(f"{PREFIX}max_people is not an integer") from exc
    return PoseModelMeta(
        name=props[PREFIX + "name"],
        kind=props[PREFIX + "pose_kind"],
        version=props.get(PREFIX + "version", ""),
        input=PoseInputSpec.from_json(props[PREFIX + "pose_input"]),
        keypoints=tuple(keypoints),
        max_people=max_people,
        source=parts["source"],
        licence=props.get(PREFIX + "licence", ""),
        converter=parts["converter"],
        parity=parts["parity"],
        sha256=props.get(SHA_KEY, ""),
        extra={k: v for k, v in props.items()
               if k.startswith(PREFIX) and k[len(PREFIX):] not in _KNOWN},
    )  # fmt: skip
