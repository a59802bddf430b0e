"""Exports a fitted scikit-learn RandomForestClassifier to the safetensors layout that
mrsort's Swift `RandomForest` loads (Sources/Classification/RandomForest.swift).

Nodes of all trees are concatenated; children are global node indices (-1 for leaves);
`roots` holds each tree's first node; `value` holds each node's normalised class
probabilities over the model's classes (float32); thresholds stay float64, as scikit-learn
compares float32 features against float64 thresholds.
"""
import json

import numpy as np
from safetensors.numpy import save_file

FORMAT = "mrsort-forest"
VERSION = "1"


def forest_arrays(forest, n_classes_total, class_index):
    """Concatenated node arrays; `class_index` maps the forest's class labels to columns."""
    features, thresholds, lefts, rights, values, roots = [], [], [], [], [], []
    offset = 0
    for estimator in forest.estimators_:
        tree = estimator.tree_
        n = tree.node_count
        roots.append(offset)
        leaf = tree.children_left < 0
        features.append(np.where(leaf, -1, tree.feature).astype(np.int32))
        thresholds.append(np.where(leaf, 0.0, tree.threshold).astype(np.float64))
        lefts.append(np.where(leaf, -1, tree.children_left + offset).astype(np.int32))
        rights.append(np.where(leaf, -1, tree.children_right + offset).astype(np.int32))
        raw = tree.value[:, 0, :].astype(np.float64)
        normalised = raw / np.maximum(raw.sum(axis=1, keepdims=True), 1e-300)
        full = np.zeros((n, n_classes_total), dtype=np.float64)
        full[:, class_index] = normalised
        values.append(full)
        offset += n
    return {
        "feature": np.concatenate(features),
        "threshold": np.concatenate(thresholds),
        "left": np.concatenate(lefts),
        "right": np.concatenate(rights),
        "value": np.concatenate(values).astype(np.float32),
        "roots": np.array(roots, dtype=np.int32),
    }


def export(forest, dataset, path, provenance):
    classes = dataset.sequences
    class_index = np.array([int(c) for c in forest.classes_])
    arrays = forest_arrays(forest, len(classes), class_index)
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "classes": json.dumps(classes),
        "columns": json.dumps(dataset.columns),
        "vocabulary": json.dumps(dataset.vocabulary, separators=(",", ":")),
    }
    metadata.update({key: str(value) for key, value in provenance.items()})
    save_file(arrays, path, metadata=metadata)
    return arrays


def predict_proba_exported(arrays, X):
    """Probabilities from the exported arrays, as the Swift code computes them (for checks)."""
    X = np.asarray(X, dtype=np.float32)
    result = np.zeros((X.shape[0], arrays["value"].shape[1]), dtype=np.float64)
    for root in arrays["roots"]:
        node = np.full(X.shape[0], root)
        while True:
            inner = arrays["left"][node] >= 0
            if not inner.any():
                break
            f = arrays["feature"][node[inner]]
            go_left = X[np.flatnonzero(inner), f].astype(np.float64) <= arrays["threshold"][node[inner]]
            node[inner] = np.where(go_left, arrays["left"][node[inner]], arrays["right"][node[inner]])
        result += arrays["value"][node].astype(np.float64)
    return result / len(arrays["roots"])
