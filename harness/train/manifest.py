"""Where the trainer writes what it did (read by the ROI without importing torch)."""

TRAIN_MANIFEST = "train_manifest.json"
