"""Reads the slices that `mrsort dataset --images` writes (the CNN never sees DICOM itself)."""
import dataclasses
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


def load_many(paths):
    """Several datasets as one (e.g. corpora of two generator versions), for the CNN: slices and
    labels concatenated, series renumbered, each study named after its file (`0-study_00001`) so
    that the split by study keeps them apart. The metadata features are dropped (their columns
    differ between corpora and the CNN does not read them)."""
    if len(paths) == 1:
        return load(paths[0])
    parts = [load(path) for path in paths]
    first, _, preprocessing = parts[0]
    for path, (data, _, prep) in zip(paths, parts):
        if prep != preprocessing or data.sequences != first.sequences or data.orientations != first.orientations:
            raise ValueError(f"{path}: other preprocessing or classes than {paths[0]}")
    offsets = np.cumsum([0] + [len(data.series_uids) for data, _, _ in parts[:-1]])
    combined = dataclasses.replace(
        first,
        features=np.zeros((sum(len(data.sequence) for data, _, _ in parts), 0), dtype=np.float32),
        sequence=np.concatenate([data.sequence for data, _, _ in parts]),
        orientation=np.concatenate([data.orientation for data, _, _ in parts]),
        series=np.concatenate([data.series + offset for (data, _, _), offset in zip(parts, offsets)]),
        columns=[], vocabulary={},
        series_uids=[uid for data, _, _ in parts for uid in data.series_uids],
        series_dirs=[f"{i}-{d}" for i, (data, _, _) in enumerate(parts) for d in data.series_dirs],
        series_vendors=[v for data, _, _ in parts for v in data.series_vendors],
        series_subjects=[s for data, _, _ in parts for s in data.series_subjects],
    )
    return combined, np.concatenate([images for _, images, _ in parts]), preprocessing


def to_float(images):
    return images.astype(np.float32) / 255.0


def series_vote(series, labels, n_series, n_classes, support=None, keep=None):
    """Majority of per-image `labels` per series, as mrsort's Swift `Vote` counts it: ties go to
    the larger summed `support` (per-image class probabilities, [images, n_classes]) where given,
    then to the lower class index; -1 for a series no image voted in. `keep` masks images out."""
    keep = np.ones(len(series), bool) if keep is None else np.asarray(keep, bool)
    series, labels = np.asarray(series)[keep], np.asarray(labels)[keep]
    counts = np.zeros((n_series, n_classes), dtype=np.int64)
    np.add.at(counts, (series, labels), 1)
    if support is None:
        winner = counts.argmax(1)
    else:
        sums = np.zeros((n_series, n_classes), dtype=np.float64)
        np.add.at(sums, series, np.asarray(support, dtype=np.float64)[keep])
        # Among the classes with the most votes, the largest summed support; argmax takes the
        # first of equal ones, the lower index.
        tied = counts == counts.max(1, keepdims=True)
        winner = np.where(tied, sums, -np.inf).argmax(1)
    return np.where(counts.sum(1) > 0, winner, -1)
