"""Training: everything that makes the zoo's files (PyTorch, the `train` extra).

- `recipe`: the zoo's recipe constants (seeds, clip counts, budgets, widths, heads);
- `build_zoo`: `make models` (`python -m models.training.build_zoo`);
- `dataset`: rendered and real training data (`ClipFrames`, pool windows);
- `silhouette/`: the two-stage edge and cloud net and its training; `nets`: the switcher
  net, the export wrapper, MAC counting; `export`: torch → ONNX with metadata and an
  agreement check; `dmd`: Dual-Model Distillation (switcher training, calibration);
- `cloud_pose/`: the pose-track cloud candidate's cache, data, net, training and fusion;
- `pose/`: `make pose-models` (`python -m models.training.pose.convert`: pinned wheels →
  ONNX) and its pins.
Guarantees: may import `models.runtime`, `models.evaluation` and `models.synth`; nothing
in `models.runtime` imports this package. Importing this package does no work (torch is
imported by the modules that need it).
"""
