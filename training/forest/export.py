"""Exports a fitted scikit-learn RandomForestClassifier to the safetensors layout that
mrsort's Swift `RandomForest` loads (Sources/Classification/RandomForest.swift).

Nodes of all trees are concatenated; children are global node indices (-1 for leaves);
`roots` holds each tree's first node; thresholds stay float64, as scikit-learn compares
float32 features against float64 thresholds. The leaves' normalised class probabilities are
stored sparse (most leaves of fully grown trees hold one class), in compressed-row form:
node n's non-zero probabilities are `value_class[value_start[n]:value_start[n+1]]` and
`value_probability[...]` (float32); inner nodes have none. This keeps the model a few MB.
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
    class_index = np.asarray(class_index)
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
        normalised[~leaf] = 0.0
        values.append(normalised)
        offset += n
    dense = np.concatenate(values).astype(np.float32)
    nodes, columns = np.nonzero(dense)
    start = np.zeros(len(dense) + 1, dtype=np.int32)
    np.add.at(start, nodes + 1, 1)
    return {
        "feature": np.concatenate(features),
        "threshold": np.concatenate(thresholds),
        "left": np.concatenate(lefts),
        "right": np.concatenate(rights),
        "value_start": np.cumsum(start).astype(np.int32),
        "value_class": class_index[columns].astype(np.int32),
        "value_probability": dense[nodes, columns].astype(np.float32),
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


def predict_proba_exported(arrays, X, n_classes):
    """Probabilities from the exported arrays, as the Swift code computes them (for checks)."""
    X = np.asarray(X, dtype=np.float32)
    n_nodes = len(arrays["feature"])
    dense = np.zeros((n_nodes, int(arrays["value_class"].max()) + 1 if len(arrays["value_class"]) else 1))
    rows = np.repeat(np.arange(n_nodes), np.diff(arrays["value_start"]))
    dense[rows, arrays["value_class"]] = arrays["value_probability"]
    result = np.zeros((X.shape[0], n_classes), dtype=np.float64)
    for root in arrays["roots"]:
        node = np.full(X.shape[0], root)
        while True:
            inner = arrays["left"][node] >= 0
            if not inner.any():
                break
            f = arrays["feature"][node[inner]]
            go_left = X[np.flatnonzero(inner), f].astype(np.float64) <= arrays["threshold"][node[inner]]
            node[inner] = np.where(go_left, arrays["left"][node[inner]], arrays["right"][node[inner]])
        result[:, :dense.shape[1]] += dense[node]
    return result / len(arrays["roots"])
