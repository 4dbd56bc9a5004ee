"""The cloud as a pose pipeline: pose ONNX per frame → tracker → a fall classifier on tracks.

Run time (numpy, PIL, onnx, onnxruntime; what `models.runtime.CloudModel.load` returns for
a cloud file that names a pose pipeline):
- `runtime.PoseCloudModel`: `.predict(windows) -> CloudOutput(probs [N,2])`, `.preprocess`
  (pose, tracks, features) and `.infer` (the classifier); `runtime.PosePipelineSpec`, the
  `fallwatch.pose_pipeline` metadata.
- `features.window_features(tracks, K) -> [K,T,F]`, `features.FEATURE_NAMES`.
Training (torch; not imported here): `cache` (pose outputs per clip frame, .npz),
`dataset.folder_tracks` (labelled track features from the cache), `net.TrackClassifier`,
`train` (fit, choose the threshold, export with `models.export`).
Importing this package does no work.
"""
