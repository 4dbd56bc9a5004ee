"""onnxruntime wrappers for the three fallwatch models — what `streams` calls.

    edge = EdgeModel.load(path, threads=1)      # ModelLoadError on a bad file
    edge = EdgeModel.load(path, file_sha256=d)  # ... or a file whose sha256 is not d
    out = edge.predict(windows)                 # windows: uint8 [T,H,W,3] each
    out.probs [N,2], out.p_fall [N], out.embedding [N,D] (D=0 if none), out.stats [N,k]
    switcher = Switcher.load(path); switcher.score(out) -> [N] P(edge wrong)
    switcher.threshold; switcher.offload(out) -> [N] bool
    switcher.check_edge(edge)                   # ModelLoadError if distilled for another edge
    cloud = CloudModel.load(path, threads=1); cloud.predict(windows).probs
    (a cloud file naming a pose pipeline loads as models.runtime.cloud_pose.pipeline.PoseCloudModel:
    pose ONNX per frame → tracker → track classifier ONNX; same predict contract)

Guarantees: only numpy, onnx (protobuf parsing for metadata/sha256) and
onnxruntime are imported; sessions run on the CPU provider with
`intra_op_num_threads=threads`, `inter_op_num_threads=1`, sequential execution;
`load` checks the file's sha256 against a pinned digest when one is given, then role,
embedded sha256, input/output names, and runs one warm-up inference so a broken or
swapped file fails at start-up, not on the first message. Preprocessing is
driven by the file's `fallwatch.input` (models.runtime.preprocess).
Failure modes: `ModelLoadError` (missing/corrupt file, sha mismatch, file sha256 not
the pinned one, wrong role,
graph without the contract's inputs/outputs, a switcher distilled for another edge
model), `WindowError` (bad window: poison
input), `InferenceError` (onnxruntime failure, switcher/edge mismatch).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self, cast

import numpy as np
import onnxruntime as ort

from models.runtime.errors import InferenceError, ModelLoadError
from models.runtime.features import build_features
from models.runtime.metadata import (
    PREFIX,
    InputSpec,
    ModelMeta,
    parse_model,
    read_metadata,
    verify_sha256,
)
from models.runtime.preprocess import frame_stats, to_model_input

__all__ = [
    "CloudModel",
    "CloudOutput",
    "EdgeModel",
    "EdgeOutput",
    "Switcher",
    "make_session",
    "verify_file_sha256",
]

log = logging.getLogger(__name__)
# A cloud file carrying this key is the classifier of a pose pipeline (models.training.cloud_pose).
POSE_PIPELINE_KEY = PREFIX + "pose_pipeline"


def make_session(data: bytes, threads: int = 1) -> ort.InferenceSession:
    """A CPU onnxruntime session with deliberate thread counts (docs/ARCHITECTURE.md, traps)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])


def _read_model(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"cannot read model {path}: {exc}") from exc


def _check_sha256(data: bytes, pinned: str, path: str | Path, role: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != pinned.lower():
        raise ModelLoadError(
            f"{path}: file sha256 is {actual}, but {role} model sha256 {pinned.lower()} "
            "is pinned; refusing to load another model"
        )


def verify_file_sha256(path: str | Path, pinned: str, role: str) -> None:
    """ModelLoadError unless the file at ``path`` has the sha256 hex digest ``pinned``.

    For entry points that refuse a swapped model before connecting anywhere; ``load``
    checks the pin again on the bytes it actually loads."""
    _check_sha256(_read_model(path), pinned, path, role)


@dataclass(frozen=True)
class _ClassProbs:
    """Class probabilities of N windows, as every video model gives them."""

    probs: np.ndarray  # [N,2] float32, column 1 = fall

    @property
    def p_fall(self) -> np.ndarray:
        return self.probs[:, 1]

    @property
    def label(self) -> np.ndarray:
        """Argmax class per window (1 = fall)."""
        out: np.ndarray = self.probs.argmax(axis=1)
        return out


@dataclass(frozen=True)
class CloudOutput(_ClassProbs):
    """Cloud model result for N windows."""


@dataclass(frozen=True)
class EdgeOutput(_ClassProbs):
    """Edge model result for N windows: the probabilities plus what the switcher reads."""

    embedding: np.ndarray  # [N,D] float32; D = 0 when the model emits none
    stats: np.ndarray  # [N,k] float32, columns = preprocess.STAT_NAMES


class _OnnxModel:
    role: ClassVar[str]
    input_name: ClassVar[str]
    required_outputs: ClassVar[tuple[str, ...]]

    def __init__(self, session: ort.InferenceSession, meta: ModelMeta, source: str) -> None:
        self.session = session
        self.meta = meta
        self.source = source
        self.output_names = tuple(o.name for o in session.get_outputs())

    @classmethod
    def load(cls, path: str | Path, threads: int = 1, *, file_sha256: str | None = None) -> Self:
        """Load, verify and warm up a model file; ModelLoadError on any problem.

        ``file_sha256``: when given, the sha256 hex digest the file's bytes must have (what
        ``sha256sum`` prints); checked on the very bytes that are loaded.
        """
        data = _read_model(path)
        if file_sha256 is not None:
            _check_sha256(data, file_sha256, path, cls.role)
        return cls.from_bytes(data, threads=threads, source=str(path))

    @classmethod
    def from_bytes(cls, data: bytes, threads: int = 1, source: str = "<bytes>") -> Self:
        proto = parse_model(data)
        verify_sha256(proto)
        meta = read_metadata(proto)
        if meta.role != cls.role:
            raise ModelLoadError(f"{source}: expected a {cls.role} model, file says {meta.role}")
        try:
            session = make_session(data, threads)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelLoadError(f"{source}: onnxruntime cannot load it: {exc}") from exc
        inputs = [i.name for i in session.get_inputs()]
        outputs = [o.name for o in session.get_outputs()]
        if inputs != [cls.input_name]:
            raise ModelLoadError(f"{source}: inputs {inputs}, expected [{cls.input_name!r}]")
        missing = [o for o in cls.required_outputs if o not in outputs]
        if missing:
            raise ModelLoadError(f"{source}: missing outputs {missing} (has {outputs})")
        model = cls(session, meta, source)
        try:
            model.warmup()
        except Exception as exc:
            raise ModelLoadError(f"{source}: warm-up inference failed: {exc}") from exc
        log.info(
            "model_loaded",
            extra={"role": meta.role, "model_name": meta.name, "version": meta.version,
                   "sha256": meta.sha256, "threads": threads, "source": source},
        )  # fmt: skip
        return model

    def _run(self, feed: np.ndarray) -> dict[str, np.ndarray]:
        try:
            values = self.session.run(None, {self.input_name: feed})
        except Exception as exc:
            raise InferenceError(f"{self.role} inference failed: {exc}") from exc
        return dict(zip(self.output_names, values, strict=True))

    def warmup(self) -> None:
        raise NotImplementedError


class _VideoModel(_OnnxModel):
    input_name = "frames"

    @property
    def spec(self) -> InputSpec:
        assert self.meta.input is not None  # guaranteed by read_metadata for edge/cloud
        return self.meta.input

    def preprocess(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """Windows → float32 `[N,C,T,H,W]` as this model expects (WindowError if bad)."""
        return to_model_input(windows, self.spec)

    def warmup(self) -> None:
        s = self.spec
        self._run(np.zeros((1, s.channels, s.frames, s.height, s.width), dtype=np.float32))


class EdgeModel(_VideoModel):
    """Small model run on every window; emits probs, embedding and frame stats."""

    role = "edge"
    required_outputs = ("probs",)

    def infer(self, x: np.ndarray) -> EdgeOutput:
        """Run on already-preprocessed `[N,C,T,H,W]` input."""
        res = self._run(x)
        emb = res.get("embedding")
        if emb is None:
            emb = np.zeros((x.shape[0], 0), dtype=np.float32)
        return EdgeOutput(
            probs=res["probs"].astype(np.float32),
            embedding=emb.astype(np.float32),
            stats=frame_stats(x),
        )

    def predict(self, windows: Sequence[np.ndarray]) -> EdgeOutput:
        return self.infer(self.preprocess(windows))


class CloudModel(_VideoModel):
    """Large model, run only on offloaded windows."""

    role = "cloud"
    required_outputs = ("probs",)

    @classmethod
    def from_bytes(cls, data: bytes, threads: int = 1, source: str = "<bytes>") -> Self:
        """Load a cloud file; one that names a pose pipeline (`fallwatch.pose_pipeline`)
        loads as `models.runtime.cloud_pose.pipeline.PoseCloudModel` (its pose file is resolved
        relative to `source`), any other as the single-ONNX video model."""
        if cls is CloudModel and POSE_PIPELINE_KEY in read_metadata(parse_model(data)).extra:
            from models.runtime.cloud_pose.pipeline import PoseCloudModel  # imports this module

            return cast(Self, PoseCloudModel.from_bytes(data, threads=threads, source=source))
        return super().from_bytes(data, threads=threads, source=source)

    def infer(self, x: np.ndarray) -> CloudOutput:
        return CloudOutput(probs=self._run(x)["probs"].astype(np.float32))

    def predict(self, windows: Sequence[np.ndarray]) -> CloudOutput:
        return self.infer(self.preprocess(windows))


class Switcher(_OnnxModel):
    """Scores P(edge answer is wrong); offload when score >= threshold."""

    role = "switcher"
    input_name = "features"
    required_outputs = ("p_wrong",)

    @property
    def features(self) -> tuple[str, ...]:
        return self.meta.features

    @property
    def threshold(self) -> float:
        """Calibrated threshold from metadata (1.0, i.e. never offload, if absent)."""
        return 1.0 if self.meta.threshold is None else float(self.meta.threshold)

    def check_edge(self, edge: EdgeModel) -> None:
        """Refuse an edge model this switcher was not distilled for (ModelLoadError).

        DMD learns when *one particular* edge model is wrong and calibrates its threshold
        on that model's outputs; next to a retrained edge it would offload an arbitrary
        share of windows, silently. `fallwatch distill` records the pair's sha256s in
        `fallwatch.pair`; a switcher without that record (built by other tools) is
        accepted with a warning.
        """
        pair = self.meta.extra_json("pair")
        if not isinstance(pair, dict) or "edge" not in pair:
            log.warning("switcher_pair_unknown", extra={"switcher": self.source,
                        "edge_sha256": edge.meta.sha256})  # fmt: skip
            return
        if pair["edge"] != edge.meta.sha256:
            raise ModelLoadError(
                f"{self.source}: switcher was distilled for edge model sha256 "
                f"{str(pair['edge'])[:12]} (version {pair.get('edge_version', '?')}), but the "
                f"loaded edge {edge.source} is sha256 {edge.meta.sha256[:12]} (version "
                f"{edge.meta.version}); distil a switcher for this edge with `fallwatch distill`"
            )

    def threshold_for_rate(self, rate: float) -> float:
        """Threshold for another offload rate, interpolated from the calibration table
        stored at distillation (`fallwatch.calibration`: rate → threshold on the DMD pool)."""
        if (
            self.meta.target_offload_rate is not None
            and abs(rate - self.meta.target_offload_rate) < 1e-9
        ):
            return self.threshold
        table = self.meta.extra_json("calibration")
        if not table:
            raise InferenceError("switcher has no calibration table for other offload rates")
        rates = np.array([float(r) for r in table["rates"]])
        thresholds = np.array([float(t) for t in table["thresholds"]])
        # Higher rate ↔ lower threshold: interpolate on the increasing rate axis.
        return float(np.interp(rate, rates, thresholds))

    def score_features(self, features: np.ndarray) -> np.ndarray:
        if features.ndim != 2 or features.shape[1] != len(self.features):
            raise InferenceError(
                f"switcher expects [N,{len(self.features)}] features, got {features.shape}"
            )
        return self._run(features.astype(np.float32))["p_wrong"].reshape(-1)

    def score(self, out: EdgeOutput) -> np.ndarray:
        """P(edge answer is wrong) per window, `[N]` float32."""
        return self.score_features(
            build_features(out.probs, out.embedding, out.stats, self.features)
        )

    def offload(self, out: EdgeOutput, threshold: float | None = None) -> np.ndarray:
        """Boolean `[N]`: send to the cloud (score >= threshold)."""
        t = self.threshold if threshold is None else threshold
        return self.score(out) >= t

    def warmup(self) -> None:
        self._run(np.zeros((1, len(self.features)), dtype=np.float32))
