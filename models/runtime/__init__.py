"""Run time: everything `streams` (and the load tests) import to score windows.

- `onnx_models`: `EdgeModel`, `CloudModel`, `Switcher` (ONNX under onnxruntime, each file
  carrying its own metadata), `make_session`, `verify_file_sha256`;
- `metadata`: the `fallwatch.*` ONNX metadata convention (`ModelMeta`, `InputSpec`);
- `preprocess`: decoded window → model input; `features`: the switcher's features;
- `windows`: the canonical 2 s window (cutting, labels); `clips`: clip folders and decoding;
- `errors`: the package's exception tree (`ModelsError` and its subclasses);
- `pose/`: the pretrained pose models' runtime (MultiPose, BlazePose, tracker, results);
- `cloud_pose/`: the pose-track cloud composite's runtime (`pipeline`) and its features.
Guarantees: numpy, PIL, PyAV, onnx and onnxruntime only: nothing here imports torch,
TensorFlow, the renderer (`models.synth`), `models.training` or `models.evaluation` (a unit
test checks it), nor Kafka, Faust or Redis. Importing this package does no work.
"""
