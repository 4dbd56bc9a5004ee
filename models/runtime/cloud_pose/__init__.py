"""The cloud as a pose pipeline, at run time: pose ONNX per frame → tracker → a fall
classifier on tracks (numpy, PIL, onnx, onnxruntime; no torch).

- `pipeline.PoseCloudModel`: what `models.runtime.onnx_models.CloudModel.load` returns for a
  cloud file that names a pose pipeline: `.predict(windows) -> CloudOutput(probs [N,2])`,
  `.preprocess` (pose, tracks, features) and `.infer` (the classifier);
  `pipeline.PosePipelineSpec`, the `fallwatch.pose_pipeline` metadata.
- `features.window_features(tracks, K) -> [K,T,F]`, `features.FEATURE_NAMES`.
Training is `models.training.cloud_pose`. Importing this package does no work.
"""
