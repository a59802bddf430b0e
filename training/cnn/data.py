"""Reads the slices that `mrsort dataset --images` writes (the CNN never sees DICOM itself)."""
import json

import numpy as np
from safetensors import safe_open

from training.forest import dataset as forest_dataset


def load(path):
    """The dataset (features, labels, series lists) and its slices as float32 [N, S, S] in [0, 1],
    plus the preprocessing parameters the slices were made with."""
    data = forest_dataset.load(path)
    with safe_open(path, framework="np") as f:
        meta = f.metadata()
        if "images" not in f.keys():
            raise ValueError(f"{path}: no slices (make it with `mrsort dataset ... --images`)")
        images = f.get_tensor("images")
    preprocessing = json.loads(meta["image_preprocessing"])
    # Stored as round(255 * value): see TrainingDataset.swift.
    return data, images, preprocessing


def to_float(images):
    return images.astype(np.float32) / 255.0
