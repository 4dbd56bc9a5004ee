"""Training of the pose-track cloud candidate (torch; its runtime is
`models.runtime.cloud_pose`).

- `cache`: pose outputs per clip frame, .npz (`python -m models.training.cloud_pose.cache`);
- `dataset.folder_tracks`: labelled track features from the cache;
- `net.TrackClassifier`; `train`: fit, choose the threshold, export with
  `models.training.export` (`python -m models.training.cloud_pose.train`);
- `fusion`: late fusion with the pixel cloud (`python -m models.training.cloud_pose.fusion`).
Importing this package does no work.
"""
