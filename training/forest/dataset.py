"""Reads the feature files that `mrsort dataset` writes (the only way training sees DICOM)."""
import json
from dataclasses import dataclass

import numpy as np
from safetensors import safe_open


@dataclass
class Dataset:
    features: np.ndarray        # float32 [images, columns]
    sequence: np.ndarray        # int64 [images], index into `sequences`
    orientation: np.ndarray     # int64 [images], -1 where unlabelled
    series: np.ndarray          # int64 [images], index into the series lists
    columns: list
    vocabulary: dict
    sequences: list
    orientations: list
    series_uids: list
    series_dirs: list
    series_vendors: list
    series_subjects: list

    @property
    def series_study(self):
        """The study of each series: the first component of its folder."""
        return np.array([d.split("/")[0] for d in self.series_dirs])


def load(path):
    with safe_open(path, framework="np") as f:
        meta = f.metadata()
        if meta.get("format") != "mrsort-dataset":
            raise ValueError(f"{path}: not an mrsort dataset (format {meta.get('format')!r})")
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    return Dataset(
        features=tensors["features"].astype(np.float32),
        sequence=tensors["sequence"],
        orientation=tensors["orientation"],
        series=tensors["series"],
        columns=json.loads(meta["columns"]),
        vocabulary=json.loads(meta["vocabulary"]),
        sequences=json.loads(meta["sequences"]),
        orientations=json.loads(meta["orientations"]),
        series_uids=json.loads(meta["series_uids"]),
        series_dirs=json.loads(meta["series_dirs"]),
        series_vendors=json.loads(meta["series_vendors"]),
        series_subjects=json.loads(meta.get("series_subjects", "[]")) or [""] * len(json.loads(meta["series_uids"])),
    )


def series_vote(dataset, image_predictions, n_classes):
    """Majority vote of per-image predictions per series (ties: the lower class index).

    Returns (predicted, true) class indices per series, for the series that have images.
    """
    counts = np.zeros((len(dataset.series_uids), n_classes), dtype=np.int64)
    np.add.at(counts, (dataset.series, image_predictions), 1)
    truth = np.full(len(dataset.series_uids), -1)
    truth[dataset.series] = dataset.sequence
    present = counts.sum(axis=1) > 0
    return counts.argmax(axis=1)[present], truth[present], np.flatnonzero(present)
