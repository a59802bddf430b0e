"""Train the metadata random forest on a synthetic corpus, report it, export it for mrsort.

    python -m training.forest.train --train CORPUS.safetensors --out models/forest.safetensors \
        [--real REAL.safetensors] [--report training/forest/REPORT.md]

CORPUS.safetensors comes from `mrsort dataset CORPUS_DIR --out ...`; REAL.safetensors from
`mrsort dataset ../shared/realdata --vocabulary CORPUS.safetensors --out ...`.

`--real-train A.safetensors B.safetensors` adds real series to the training rows (at most
`--real-images-per-series` evenly spaced images of each, each repeated `--real-weight` times,
since a real series stands for a site the generator does not imitate): features per split are
tuned on synthetic studies only, the final forest is fitted on the synthetic training studies and
every real series. What that gains on sites never seen is measured by leave-one-source-out
(`training/forest/loso.py`, `make loso`), not by `--real`, which then scores training data.

Held-out synthetic figures use a split by study, so no study contributes to both sides.
"""
import argparse
import json
import os
import shlex
import sys
import time

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from sklearn.model_selection import GroupKFold, GroupShuffleSplit

from . import dataset as ds
from . import export


def split_by_study(data, test_size, seed):
    groups = data.series_study[data.series]
    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    train, test = next(splitter.split(data.features, data.sequence, groups))
    return train, test


def subset(data, rows):
    return ds.Dataset(
        features=data.features[rows], sequence=data.sequence[rows], orientation=data.orientation[rows],
        series=data.series[rows], columns=data.columns, vocabulary=data.vocabulary, sequences=data.sequences,
        orientations=data.orientations, series_uids=data.series_uids, series_dirs=data.series_dirs,
        series_vendors=data.series_vendors, series_subjects=data.series_subjects)


def cap_rows(series, limit):
    """Boolean mask keeping at most `limit` rows per series, evenly spaced, first and last kept."""
    keep = np.zeros(len(series), dtype=bool)
    for s in np.unique(series):
        rows = np.flatnonzero(series == s)
        if limit <= 0 or len(rows) <= limit:
            keep[rows] = True
        else:
            keep[rows[np.unique(np.round(np.linspace(0, len(rows) - 1, limit)).astype(int))]] = True
    return keep


def real_rows(paths, columns, limit, weight):
    """The training rows of real datasets: capped per series, each repeated `weight` times."""
    X, y = [], []
    for path in paths:
        real = ds.load(path)
        if real.columns != columns:
            raise SystemExit(f"{path}: columns differ from the training set; extract it with --vocabulary of the corpus")
        keep = cap_rows(real.series, limit)
        X.append(np.repeat(real.features[keep], weight, axis=0))
        y.append(np.repeat(real.sequence[keep], weight, axis=0))
    return np.concatenate(X), np.concatenate(y)


def fit(X, y, max_features, trees, seed, jobs):
    forest = RandomForestClassifier(n_estimators=trees, max_features=max_features, class_weight="balanced",
                                    min_samples_leaf=1, random_state=seed, n_jobs=jobs)
    return forest.fit(X, y)


def series_accuracy(data, arrays, n_classes):
    proba = export.predict_proba_exported(arrays, data.features, n_classes)
    predicted, truth, index = ds.series_vote(data, proba.argmax(axis=1), n_classes)
    return predicted, truth, index


def table(truth, predicted, names):
    labels = sorted(set(truth) | set(predicted))
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=labels, zero_division=0)
    lines = ["| class | N | precision | recall | F1 |", "|---|---:|---:|---:|---:|"]
    for label, p, r, f, n in zip(labels, precision, recall, f1, support):
        if n == 0 and label not in set(predicted):
            continue
        lines.append(f"| {names[label]} | {n} | {p:.3f} | {r:.3f} | {f:.3f} |")
    weighted = precision_recall_fscore_support(truth, predicted, average="weighted", zero_division=0)
    lines.append(f"| weighted | {len(truth)} | {weighted[0]:.3f} | {weighted[1]:.3f} | {weighted[2]:.3f} |")
    return "\n".join(lines)


def confusion(truth, predicted, names):
    labels = sorted(set(truth) | set(predicted))
    matrix = confusion_matrix(truth, predicted, labels=labels)
    header = "| true \\ predicted | " + " | ".join(names[l] for l in labels) + " |"
    lines = [header, "|---" * (len(labels) + 1) + "|"]
    for label, row in zip(labels, matrix):
        lines.append(f"| {names[label]} | " + " | ".join(str(v) if v else "·" for v in row) + " |")
    return "\n".join(lines)


def importance_figure(forest, columns, path, top=25):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    order = np.argsort(forest.feature_importances_)[::-1][:top]
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.barh([columns[i] for i in order][::-1], forest.feature_importances_[order][::-1], color="#4472c4")
    ax.set_xlabel("mean decrease in impurity")
    ax.set_title("Metadata forest: the 25 most important features")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--real", help="a real dataset to score the forest on (training data too if also in --real-train)")
    parser.add_argument("--real-train", nargs="+", default=[], help="real datasets whose series join the training rows")
    parser.add_argument("--real-weight", type=int, default=5, help="times each real training image is repeated")
    parser.add_argument("--real-images-per-series", type=int, default=16)
    parser.add_argument("--report")
    parser.add_argument("--figure")
    parser.add_argument("--fixture", help="write the Swift parity fixture (rows and scikit-learn probabilities)")
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--max-features", type=int, nargs="+", default=[2, 4, 8, 14, 20, 28, 40, 60])
    parser.add_argument("--test-size", type=float, default=0.2)
    parser.add_argument("--folds", type=int, default=0, help="tune by this many-fold cross-validation by study (default: one split)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--corpus-command", help="how the training corpus was made (recorded in the report)")
    args = parser.parse_args(argv)
    command = "python -m training.forest.train " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))

    data = ds.load(args.train)
    names = data.sequences
    n_classes = len(names)
    train_rows, test_rows = split_by_study(data, args.test_size, args.seed)
    train, test = subset(data, train_rows), subset(data, test_rows)
    # Tune the features per split on a validation split of the training studies, or with --folds
    # by cross-validation over them (a single split of a few hundred series ties settings).
    if args.folds > 1:
        groups = train.series_study[train.series]
        splits = list(GroupKFold(n_splits=args.folds).split(train.features, train.sequence, groups))
    else:
        splits = [split_by_study(train, 0.25, args.seed + 1)]
    tuning = {}
    for m in args.max_features:
        correct = series = 0
        for fit_rows, val_rows in splits:
            fit_set, val_set = subset(train, fit_rows), subset(train, val_rows)
            forest = fit(fit_set.features, fit_set.sequence, m, args.trees, args.seed, args.jobs)
            arrays = export.forest_arrays(forest, n_classes, forest.classes_.astype(int))
            predicted, truth, _ = series_accuracy(val_set, arrays, n_classes)
            correct += int((predicted == truth).sum())
            series += len(truth)
        tuning[m] = correct / series
        print(f"max_features={m}: validation series accuracy {tuning[m]:.4f}", flush=True)
    best = max(tuning, key=lambda m: (tuning[m], -m))

    X, y = train.features, train.sequence
    real_training = 0
    if args.real_train:
        Xr, yr = real_rows(args.real_train, data.columns, args.real_images_per_series, args.real_weight)
        real_training = len(yr) // args.real_weight
        X, y = np.concatenate([X, Xr]), np.concatenate([y, yr])
        print(f"real training images: {real_training} (×{args.real_weight})", flush=True)
    start = time.time()
    forest = fit(X, y, best, args.trees, args.seed, args.jobs)
    seconds = time.time() - start
    image_accuracy = float((forest.predict(test.features) == test.sequence).mean())
    arrays = export.forest_arrays(forest, n_classes, forest.classes_.astype(int))
    predicted, truth, _ = series_accuracy(test, arrays, n_classes)
    held_out = float((predicted == truth).mean())
    # What remains when pre- and post-contrast twins count as one: the part of the error that
    # metadata cannot carry (ContrastBolusAgent is often missing), left to pixels and study context.
    twin = {names.index(post): names.index(pre) for pre, post in
            [("t1_pre", "t1_post"), ("t1_iac_pre", "t1_iac_post"), ("t1_3d_pre", "t1_3d_post"), ("vibe_pre", "vibe_post")]}
    merge = np.vectorize(lambda c: twin.get(int(c), int(c)))
    contrast_blind = float((merge(predicted) == merge(truth)).mean())
    print(f"held-out synthetic: image accuracy {image_accuracy:.4f}, series accuracy {held_out:.4f} "
          f"({len(truth)} series)", flush=True)

    provenance = {"trained_with": command, "trees": args.trees, "max_features": best,
                  "training_images": len(train.sequence), "real_training_images": real_training,
                  "held_out_series_accuracy": f"{held_out:.4f}"}
    arrays = export.export(forest, data, args.out, provenance)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB, "
          f"{len(arrays['feature'])} nodes in {len(arrays['roots'])} trees)")

    if args.fixture:
        from safetensors.numpy import save_file
        rng = np.random.default_rng(args.seed)
        rows = rng.choice(len(test.sequence), size=min(300, len(test.sequence)), replace=False)
        X = test.features[rows]
        proba = np.zeros((len(rows), n_classes))
        proba[:, forest.classes_.astype(int)] = forest.predict_proba(X)
        save_file({"rows": X.astype(np.float32), "probabilities": proba.astype(np.float64)}, args.fixture,
                  metadata={"model": args.out, "made_by": command})
        print(f"wrote parity fixture {args.fixture} ({len(rows)} rows)")

    report = [f"# Metadata random forest\n", f"Made by `{command}`.\n"]
    if args.corpus_command:
        report += [f"Training corpus: `{args.corpus_command}`.\n"]
    report += [
              f"- training images: {len(train.sequence)} synthetic (series: {len(set(train.series))}); "
              f"held-out studies' series: {len(truth)}",
              f"- real training images: {real_training} from " + (", ".join(f"`{p}`" for p in args.real_train) or "none")
              + (f", at most {args.real_images_per_series} per series, each ×{args.real_weight}" if args.real_train else ""),
              f"- trees: {args.trees}; features per split tuned on "
              + (f"{args.folds}-fold cross-validation over" if args.folds > 1 else "a validation split of") + " the training studies: "
              + ", ".join(f"{m}: {a:.4f}" for m, a in tuning.items()) + f" → {best}",
              f"- fit time: {seconds:.1f} s on {args.jobs} jobs",
              f"- **held-out synthetic series accuracy: {held_out:.4f}** (image accuracy {image_accuracy:.4f}); "
              f"with each pre/post-contrast pair counted as one class: {contrast_blind:.4f}\n",
              "## Held-out synthetic (series vote)\n", table(truth, predicted, names), ""]
    if args.figure:
        importance_figure(forest, data.columns, args.figure)
        report += [f"Feature importances: ![importances]({os.path.basename(args.figure)})\n"]
    if args.real:
        real = ds.load(args.real)
        if real.columns != data.columns:
            raise SystemExit(f"{args.real}: columns differ from the training set; extract it with "
                             f"--vocabulary {args.out}")
        subjects = np.array(real.series_subjects)
        predicted, truth, index = series_accuracy(real, arrays, n_classes)
        counted = np.isin(subjects[index], ["head", "non-brain"])
        p, t = predicted[counted], truth[counted]
        trained_on = os.path.abspath(args.real) in {os.path.abspath(p) for p in args.real_train}
        report += ["## ../shared/realdata (series vote; head and non-brain series, phantoms apart)\n",
                   *(["These series are part of the training rows: the figure is a training figure. "
                      "Leave-one-source-out (`make loso`, LOSO.md) is the held-out one.\n"] if trained_on else []),
                   f"**series accuracy: {(p == t).mean():.4f}** ({int((p == t).sum())}/{len(t)})\n",
                   "Per class:\n", table(t, p, names), "", "Confusion matrix:\n", confusion(t, p, names), ""]
        wrong = [(real.series_dirs[i], names[truth_], names[pred]) for i, truth_, pred, c in
                 zip(index, truth, predicted, counted) if c and truth_ != pred]
        if wrong:
            report += ["Misclassified:\n", "| series | label | forest |", "|---|---|---|"]
            report += [f"| {d} | {a} | {b} |" for d, a, b in wrong] + [""]
        phantom = subjects[index] == "phantom"
        if phantom.any():
            report += [f"Phantom series (reported apart): {int((predicted[phantom] == truth[phantom]).sum())}"
                       f"/{int(phantom.sum())} match their label.\n"]
        print(f"realdata series accuracy {(p == t).mean():.4f} ({len(t)} series)")
    if args.report:
        with open(args.report, "w") as f:
            f.write("\n".join(report))
        print(f"wrote {args.report}")


if __name__ == "__main__":
    main()
