"""The CNN's inputs and outputs without PyTorch: `mrsort dataset --images` slices as the
training reads them (training/cnn/data.py), and the shipped model file's structure.

Needs the mrsort binary (as test_mrsort_reader.py): `swift build` first, or MRSORT_BIN.
"""
import json
import os
import subprocess

import numpy as np
import pytest
from safetensors import safe_open

from training.cnn import data as cnn_data

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "models", "cnn.safetensors")


@pytest.fixture(scope="module")
def mrsort():
    path = os.environ.get("MRSORT_BIN", os.path.join(ROOT, ".build", "debug", "mrsort"))
    assert os.access(path, os.X_OK), f"{path} not found: run `swift build` first or set MRSORT_BIN"
    return path


def test_dataset_images_reach_the_training_reader(corpus, mrsort, tmp_path):
    out, rows = corpus
    path = str(tmp_path / "images.safetensors")
    subprocess.run([mrsort, "dataset", out, "--images", "--image-size", "48", "--max-images-per-series", "3",
                    "--out", path], check=True, capture_output=True, text=True)
    data, images, preprocessing = cnn_data.load(path)
    assert preprocessing == {"size": 48, "lowerPercentile": 1, "upperPercentile": 99}
    assert images.dtype == np.uint8 and images.shape == (len(data.sequence), 48, 48)
    # Every labelled series contributes 1..3 slices, one feature row per slice.
    counts = np.bincount(data.series, minlength=len(rows))
    assert counts.min() >= 1 and counts.max() <= 3
    assert len(data.features) == len(images)
    x = cnn_data.to_float(images)
    assert x.min() == 0.0 and x.max() == 1.0
    # Normalised per slice: almost every slice reaches both ends of [0, 1] (1st and 99th percentile).
    per_slice_max = x.reshape(len(x), -1).max(axis=1)
    assert (per_slice_max == 1.0).mean() > 0.9


def test_datasets_combine_for_training(corpus, mrsort, tmp_path):
    out, _ = corpus
    paths = []
    for name in ("a", "b"):
        path = str(tmp_path / f"{name}.safetensors")
        subprocess.run([mrsort, "dataset", out, "--images", "--image-size", "48", "--max-images-per-series", "2",
                        "--out", path], check=True, capture_output=True, text=True)
        paths.append(path)
    single, images, _ = cnn_data.load(paths[0])
    both, both_images, preprocessing = cnn_data.load_many(paths)
    n, n_series = len(single.sequence), len(single.series_uids)
    assert both_images.shape == (2 * n, 48, 48) and preprocessing["size"] == 48
    assert np.array_equal(both_images[n:], images) and np.array_equal(both.sequence[n:], single.sequence)
    # The second file's series follow the first's; its studies stay apart in the split by study.
    assert np.array_equal(both.series[n:], single.series + n_series)
    assert len(set(both.series_study)) == 2 * len(set(single.series_study))
    # Other preprocessing cannot be trained on together.
    other = str(tmp_path / "c.safetensors")
    subprocess.run([mrsort, "dataset", out, "--images", "--image-size", "32", "--max-images-per-series", "2",
                    "--out", other], check=True, capture_output=True, text=True)
    with pytest.raises(ValueError, match="other preprocessing"):
        cnn_data.load_many([paths[0], other])


def test_shipped_model_structure():
    if not os.path.exists(MODEL):
        pytest.skip("no shipped CNN (make cnn-model)")
    with safe_open(MODEL, framework="np") as f:
        meta = f.metadata()
        shapes = {name: f.get_slice(name).get_shape() for name in f.keys()}
    assert meta["format"] == "mrsort-cnn" and meta["version"] == "1"
    strides = json.loads(meta["strides"])
    assert len(strides) == 10, "the paper's 10 convolution layers"
    channels = 1
    for i in range(len(strides)):
        out, inp, kh, kw = shapes[f"conv{i}.weight"]
        assert (inp, kh, kw) == (channels, 3, 3) and shapes[f"conv{i}.bias"] == [out]
        channels = out
    assert shapes["sequence.weight"] == [25, channels] and shapes["orientation.weight"] == [4, channels]
    assert len(json.loads(meta["sequences"])) == 25 and json.loads(meta["orientations"])[-1] == "oblique"
    assert os.path.getsize(MODEL) < 8 * 2**20


def test_series_vote_breaks_ties_as_the_shipped_swift_vote():
    """Ties go to the summed probabilities, then to the lower index (Sources/Classification/Vote.swift);
    numpy's plain argmax (ties to the lower index) fails the first series."""
    series = np.array([0, 0, 1, 1, 2, 2, 2])
    labels = np.array([0, 2, 1, 0, 1, 1, 2])
    support = np.array([
        [0.6, 0.0, 0.4], [0.1, 0.0, 0.9],   # series 0: one vote each for 0 and 2; 2 has more support
        [0.5, 0.5, 0.0], [0.5, 0.5, 0.0],   # series 1: tied votes and support: the lower index, 0
        [0.0, 0.9, 0.1], [0.0, 0.9, 0.1], [0.0, 0.0, 1.0],  # series 2: 1 wins on votes despite less support
    ])
    assert cnn_data.series_vote(series, labels, 4, 3, support=support).tolist() == [2, 0, 1, -1]
    # Without support (the orientation vote) ties go to the lower index; masked images do not vote.
    assert cnn_data.series_vote(series, labels, 4, 3).tolist() == [0, 0, 1, -1]
    keep = np.array([False, True, True, True, True, True, True])
    assert cnn_data.series_vote(series, labels, 4, 3, support=support, keep=keep).tolist() == [2, 0, 1, -1]
