"""Leave-one-source-out (LOSO) evaluation of the metadata forest on real DICOM (issue 23).

    python -m training.forest.loso --mrsort /tmp/mrsort-loso --work /tmp/loso \
        --synth /tmp/corpus --heldout /tmp/corpus-heldout \
        --variant original=../shared/realdata,../shared/realpool/dicom \
        --variant deid=/tmp/deid/realdata,/tmp/deid/realpool \
        --real-weight 5 --jobs 2 --shipped models/forest.safetensors --out training/forest/LOSO.md

Features come from the Swift binary only (`mrsort dataset`, the serving path): the synthetic corpus
with its own vocabulary (as `make forest-model`), everything else with `--vocabulary` of it, real
series with every image (`--max-images-per-series 0`: the agent votes over all of a series' images).
Extracted files are cached under --work.

A source is the folder name before `__`. Models, all with train.py's functions and settings:

* (a) synthetic only, the shipped recipe (train.py: split by study, max_features tuned on a
  validation split of the training studies, 100 trees, balanced class weights, seed 0);
* (b) for each source s: the same synthetic training part plus every real series of the variant
  except those of s, each real image repeated `--real-weight` times (train.fit takes no sample
  weights), with (a)'s max_features; it predicts the series of s only.

Series vote as the Swift agent forms the forest's (Vote.swift, RandomForest.vote): one vote per image
for its most probable class (ties: the first class), the majority wins, ties between classes go to
the larger summed probability, then to the earlier class. Probabilities come from the exported arrays,
as Swift computes them (export.predict_proba_exported). Phantoms (`subject` = phantom) are
predicted like the rest and reported apart; the headline counts head and non-brain series, as
`mrsort eval` does.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections import Counter, defaultdict

import numpy as np

from . import dataset as ds
from . import export
from . import train


# ---------------------------------------------------------------- features (Swift) and data

def extract(mrsort, directory, out, vocabulary=None, all_images=False):
    if os.path.exists(out):
        return out
    command = [mrsort, "dataset", directory, "--out", out]
    if vocabulary:
        command += ["--vocabulary", vocabulary]
    if all_images:
        command += ["--max-images-per-series", "0"]
    print("$", " ".join(shlex.quote(c) for c in command), flush=True)
    subprocess.run(command, check=True)
    return out


def concat(parts):
    """One Dataset from several extracted with the same vocabulary (series indices offset)."""
    first = parts[0]
    for p in parts[1:]:
        if p.columns != first.columns:
            raise SystemExit("feature files were extracted with different vocabularies")
    offsets = np.cumsum([0] + [len(p.series_uids) for p in parts[:-1]])
    return ds.Dataset(
        features=np.concatenate([p.features for p in parts]),
        sequence=np.concatenate([p.sequence for p in parts]),
        orientation=np.concatenate([p.orientation for p in parts]),
        series=np.concatenate([p.series + o for p, o in zip(parts, offsets)]),
        columns=first.columns, vocabulary=first.vocabulary, sequences=first.sequences,
        orientations=first.orientations,
        series_uids=sum((p.series_uids for p in parts), []),
        series_dirs=sum((p.series_dirs for p in parts), []),
        series_vendors=sum((p.series_vendors for p in parts), []),
        series_subjects=sum((p.series_subjects for p in parts), []))


def drop_columns(data, prefixes):
    """The dataset without the columns whose names start with one of `prefixes` (an ablation of
    feature groups on the same extracted files: e.g. the layout-v2 columns, to measure the v1 set)."""
    if not prefixes:
        return data
    keep = [i for i, c in enumerate(data.columns) if not any(c.startswith(p) for p in prefixes)]
    return ds.Dataset(**{**data.__dict__, "features": data.features[:, keep], "columns": [data.columns[i] for i in keep]})


def source_of(series_dir):
    return series_dir.split("/")[0].split("__")[0]


# ---------------------------------------------------------------- the forest and its series vote

def swift_series_vote(data, proba):
    """Per series (predicted, truth, series index, summed probability) as RandomForest.vote forms it."""
    n_series, n_classes = len(data.series_uids), proba.shape[1]
    votes = proba.argmax(axis=1)  # first maximum, as mostProbable
    counts = np.zeros((n_series, n_classes), dtype=np.int64)
    np.add.at(counts, (data.series, votes), 1)
    support = np.zeros((n_series, n_classes))
    np.add.at(support, data.series, proba)
    truth = np.full(n_series, -1)
    truth[data.series] = data.sequence
    present = np.flatnonzero(counts.sum(axis=1) > 0)
    predicted = []
    for s in present:
        top = counts[s] == counts[s].max()
        candidates = np.flatnonzero(top)
        best = candidates[support[s, candidates] == support[s, candidates].max()]
        predicted.append(int(best.min()))
    return np.array(predicted, dtype=int), truth[present], present, support[present]


def fit_arrays(X, y, max_features, seed, jobs, trees=100):
    forest = train.fit(X, y, max_features, trees, seed, jobs)
    return forest, export.forest_arrays(forest, 25, forest.classes_.astype(int))


def tune_synthetic(synth, seed, jobs, grid):
    """train.py's recipe: split by study, tune max_features on a validation split, fit."""
    n_classes = len(synth.sequences)
    train_rows, test_rows = train.split_by_study(synth, 0.2, seed)
    fit_part, test_part = train.subset(synth, train_rows), train.subset(synth, test_rows)
    fit_rows, val_rows = train.split_by_study(fit_part, 0.25, seed + 1)
    tuning = {}
    for m in grid:
        f_set, v_set = train.subset(fit_part, fit_rows), train.subset(fit_part, val_rows)
        forest = train.fit(f_set.features, f_set.sequence, m, 100, seed, jobs)
        arrays = export.forest_arrays(forest, n_classes, forest.classes_.astype(int))
        p, t, _ = train.series_accuracy(v_set, arrays, n_classes)
        tuning[m] = float((p == t).mean())
        print(f"max_features={m}: validation series accuracy {tuning[m]:.4f}", flush=True)
    best = max(tuning, key=lambda m: (tuning[m], -m))
    return fit_part, test_part, tuning, best


def series_predict(arrays, data):
    proba = export.predict_proba_exported(arrays, data.features, len(data.sequences))
    return proba, swift_series_vote(data, proba)


def path_contributions(forest, X, a, b):
    """Per feature, the summed change of P(a) - P(b) along the decision paths of the rows X
    (a tree-interpreter decomposition): positive = the feature pushed the rows towards a over b."""
    classes = list(forest.classes_.astype(int))
    ia = classes.index(a) if a in classes else None
    ib = classes.index(b) if b in classes else None
    total = np.zeros(X.shape[1])
    for est in forest.estimators_:
        tree = est.tree_
        value = tree.value[:, 0, :]
        value = value / np.maximum(value.sum(axis=1, keepdims=True), 1e-300)
        diff = (value[:, ia] if ia is not None else 0) - (value[:, ib] if ib is not None else 0)
        paths = est.decision_path(X)
        for r in range(X.shape[0]):
            nodes = paths.indices[paths.indptr[r]:paths.indptr[r + 1]]
            nodes = np.sort(nodes)
            for parent, child in zip(nodes[:-1], nodes[1:]):
                total[tree.feature[parent]] += diff[child] - diff[parent]
    return total / len(forest.estimators_)


# ---------------------------------------------------------------- reporting

def recall_table(rows, names, columns):
    """rows: {column: (predicted, truth)}; per class N and recall for each column."""
    classes = sorted(set().union(*[set(t) for _, t in rows.values()]))
    head = "| class | N | " + " | ".join(columns) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(columns)]
    for c in classes:
        n = int((rows[columns[0]][1] == c).sum())
        cells = []
        for col in columns:
            p, t = rows[col]
            mask = t == c
            cells.append(f"{int((p[mask] == c).sum())} ({(p[mask] == c).mean():.2f})" if n else "—")
        lines.append(f"| {names[c]} | {n} | " + " | ".join(cells) + " |")
    cells = []
    for col in columns:
        p, t = rows[col]
        cells.append(f"**{int((p == t).sum())}/{len(t)} ({(p == t).mean():.3f})**")
    lines.append(f"| all | {len(next(iter(rows.values()))[1])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mrsort", default="mrsort")
    parser.add_argument("--work", required=True, help="cache of extracted feature files")
    parser.add_argument("--synth", required=True, help="synthetic training corpus (python -m training.synth)")
    parser.add_argument("--heldout", help="held-out synthetic corpus (another seed)")
    parser.add_argument("--variant", action="append", required=True, metavar="NAME=DIR[,DIR...]",
                        help="real DICOM trees with labels.csv; the first variant is the original files")
    parser.add_argument("--real-weight", type=int, default=5, help="each real training image repeated this often")
    parser.add_argument("--real-images-per-series", type=int, default=16,
                        help="real training images per series at most (0: all); evaluation reads every image")
    parser.add_argument("--max-features", type=int, nargs="+", default=[2, 4, 8, 14, 20, 28, 40, 60])
    parser.add_argument("--shipped", help="also score this exported forest (e.g. models/forest.safetensors)")
    parser.add_argument("--cross", action="store_true",
                        help="also (b) trained on the first variant's real series, tested on the others")
    parser.add_argument("--sources", nargs="*", help="hold out only these sources (a quick check; the report is partial)")
    parser.add_argument("--drop-columns", nargs="*", default=[], metavar="PREFIX",
                        help="leave out the columns whose names start with these (ablation; the shipped forest keeps its own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", help="Markdown report")
    parser.add_argument("--series-csv", help="per-series predictions (CSV)")
    parser.add_argument("--contributions", help="JSON: feature contributions of the (b) errors")
    args = parser.parse_args(argv)
    command = "python -m training.forest.loso " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    os.makedirs(args.work, exist_ok=True)
    start = time.time()

    synth_file = extract(args.mrsort, args.synth, os.path.join(args.work, "synth.safetensors"))
    synth = drop_columns(ds.load(synth_file), args.drop_columns)
    names = synth.sequences
    heldout = None
    if args.heldout:
        heldout = drop_columns(ds.load(extract(args.mrsort, args.heldout, os.path.join(args.work, "heldout.safetensors"), synth_file)),
                               args.drop_columns)
    variants = {}
    for spec in args.variant:
        name, dirs = spec.split("=", 1)
        parts = []
        for i, d in enumerate(dirs.split(",")):
            out = os.path.join(args.work, f"{name}-{i}.safetensors")
            parts.append(drop_columns(ds.load(extract(args.mrsort, d, out, synth_file, all_images=True)), args.drop_columns))
        variants[name] = concat(parts)
    first = next(iter(variants))

    # (a): the shipped recipe on this corpus.
    fit_part, test_part, tuning, best = tune_synthetic(synth, args.seed, args.jobs, args.max_features)
    forest_a, arrays_a = fit_arrays(fit_part.features, fit_part.sequence, best, args.seed, args.jobs)
    p, t, _, _ = series_predict(arrays_a, test_part)[1]
    synth_split_a = float((p == t).mean())
    heldout_scores = {}
    if heldout is not None:
        p, t, _, _ = series_predict(arrays_a, heldout)[1]
        heldout_scores["a"] = (int((p == t).sum()), len(t))
    print(f"(a) max_features {best}; split {synth_split_a:.4f}; heldout {heldout_scores.get('a')}", flush=True)

    results = {}  # (model, variant) -> dict series_index -> predicted
    per_series = defaultdict(dict)
    contributions = []
    fold_heldout = []
    for vname, real in variants.items():
        _, (p, t, idx, _) = series_predict(arrays_a, real)
        results[("a", vname)] = dict(zip(idx, p))
    if args.shipped:
        from safetensors import safe_open
        with safe_open(args.shipped, framework="np") as f:
            shipped_arrays = {k: f.get_tensor(k) for k in f.keys()}
        for vname, spec in zip(variants, args.variant):
            parts = []
            for i, d in enumerate(spec.split("=", 1)[1].split(",")):
                out = os.path.join(args.work, f"shipped-{vname}-{i}.safetensors")
                parts.append(ds.load(extract(args.mrsort, d, out, args.shipped, all_images=True)))
            real_s = concat(parts)
            _, (p, t, idx, _) = series_predict(shipped_arrays, real_s)
            uid_to_index = {u: i for i, u in enumerate(variants[vname].series_dirs)}
            results[("shipped", vname)] = {uid_to_index[real_s.series_dirs[i]]: v for i, v in zip(idx, p)}

    # Training rows of a real series: at most --real-images-per-series, evenly spaced (a 200-frame
    # enhanced file would otherwise outweigh a dozen single-file series); evaluation reads them all.
    capped = {v: train.cap_rows(real.series, args.real_images_per_series) for v, real in variants.items()}
    train_variants = [(v, v) for v in variants]
    if args.cross:
        train_variants += [(first, v) for v in variants if v != first]
    for train_v, test_v in train_variants:
        real_train, real_test = variants[train_v], variants[test_v]
        train_sources = np.array([source_of(d) for d in real_train.series_dirs])
        test_sources = np.array([source_of(d) for d in real_test.series_dirs])
        key = ("b", test_v) if train_v == test_v else ("b-cross", test_v)
        results[key] = {}
        for s in sorted(set(test_sources)):
            if args.sources and s not in args.sources:
                continue
            keep = (train_sources[real_train.series] != s) & capped[train_v]
            Xr = np.repeat(real_train.features[keep], args.real_weight, axis=0)
            yr = np.repeat(real_train.sequence[keep], args.real_weight, axis=0)
            X = np.concatenate([fit_part.features, Xr])
            y = np.concatenate([fit_part.sequence, yr])
            forest, arrays = fit_arrays(X, y, best, args.seed, args.jobs)
            rows = test_sources[real_test.series] == s
            held = train.subset(real_test, np.flatnonzero(rows))
            _, (p, t, idx, _) = series_predict(arrays, held)
            for i, v in zip(idx, p):
                results[key][i] = v
                if key == ("b", test_v) and v != real_test.sequence[real_test.series == i][0]:
                    images = held.features[held.series == i][:32]
                    c = path_contributions(forest, images, int(v), int(real_test.sequence[real_test.series == i][0]))
                    order = np.argsort(-c)[:6]
                    contributions.append({"variant": test_v, "series": real_test.series_dirs[i],
                                          "label": names[int(real_test.sequence[real_test.series == i][0])],
                                          "predicted": names[int(v)],
                                          "towards_predicted": [(real_test.columns[j], round(float(c[j]), 3)) for j in order if c[j] > 0]})
            if heldout is not None and key == ("b", test_v):
                hp, ht, _, _ = series_predict(arrays, heldout)[1]
                fold_heldout.append((test_v, s, int((hp == ht).sum()), len(ht)))
            print(f"{key} fold {s}: {len(idx)} series, {int(sum(results[key][i] == real_test.sequence[real_test.series == i][0] for i in idx))} right"
                  f" ({time.time() - start:.0f} s)", flush=True)

    # ---------------------------------------------------------------- report
    models = [("shipped", "shipped forest")] if args.shipped else []
    models += [("a", "(a) synthetic only"), ("b", "(b) LOSO synthetic + real")]
    if args.cross:
        models += [("b-cross", f"(b) trained on {first} real")]
    columns, rows_head, rows_phantom = [], {}, {}
    by_source = defaultdict(dict)
    base = variants[first]
    subjects = np.array(base.series_subjects)
    truth_all = np.full(len(base.series_uids), -1)
    truth_all[base.series] = base.sequence
    for m, label in models:
        for vname in variants:
            if (m, vname) not in results:
                continue
            col = f"{label}, {vname}"
            columns.append(col)
            pred = results[(m, vname)]
            real = variants[vname]
            idx = np.array(sorted(pred))
            p = np.array([pred[i] for i in idx])
            truth = np.full(len(real.series_uids), -1)
            truth[real.series] = real.sequence
            t = truth[idx]
            subj = np.array(real.series_subjects)[idx]
            head = np.isin(subj, ["head", "non-brain"])
            rows_head[col] = (p[head], t[head])
            rows_phantom[col] = (p[~head], t[~head])
            srcs = np.array([source_of(real.series_dirs[i]) for i in idx])
            for s in sorted(set(srcs)):
                mask = (srcs == s) & head
                pm = (srcs == s) & ~head
                by_source[s][col] = (int((p[mask] == t[mask]).sum()), int(mask.sum()),
                                     int((p[pm] == t[pm]).sum()), int(pm.sum()))
            for i, v in zip(idx, p):
                per_series[real.series_dirs[i]][col] = names[v]
                per_series[real.series_dirs[i]]["label"] = names[truth[i]]
                per_series[real.series_dirs[i]]["subject"] = real.series_subjects[i]

    if args.series_csv:
        import csv
        with open(args.series_csv, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["series", "source", "subject", "label"] + columns)
            for d in sorted(per_series):
                r = per_series[d]
                w.writerow([d, source_of(d), r.get("subject", ""), r.get("label", "")] + [r.get(c, "") for c in columns])
    if args.contributions:
        with open(args.contributions, "w") as fh:
            json.dump(contributions, fh, indent=1)

    short = {c: c.replace("(a) synthetic only", "(a)").replace("(b) LOSO synthetic + real", "(b)")
             .replace("shipped forest", "shipped") for c in columns}
    lines = [f"Made by `{command}` in {time.time() - start:.0f} s.\n",
             f"- synthetic training part: {len(set(fit_part.series))} series, {len(fit_part.sequence)} images "
             f"(train.py's 80% split by study of `{args.synth}`); (a)'s tuning: "
             + ", ".join(f"{m}: {a:.4f}" for m, a in tuning.items()) + f" → max_features {best}",
             f"- columns: {len(synth.columns)}" + (f" (left out: {', '.join(args.drop_columns)})" if args.drop_columns else ""),
             f"- (a) on the synthetic split's held-out 20% of studies: {synth_split_a:.4f}",
             f"- (b): real training images capped at {args.real_images_per_series} per series (evenly spaced), each "
             f"repeated ×{args.real_weight}; per fold about {int(capped[first].sum()) * args.real_weight} real rows beside "
             f"{len(fit_part.sequence)} synthetic ones",
             f"- real series: " + ", ".join(f"{v}: {len(variants[v].series_uids)} series, {len(variants[v].sequence)} images"
                                           for v in variants), ""]
    if heldout is not None:
        a_right, n = heldout_scores["a"]
        lines.append(f"Held-out synthetic `{args.heldout}` ({n} series), series accuracy: (a) {a_right / n:.4f}; (b) per fold "
                     + "; ".join(f"{v}: min {min(r / k for vv, _, r, k in fold_heldout if vv == v):.4f}, "
                                 f"mean {np.mean([r / k for vv, _, r, k in fold_heldout if vv == v]):.4f}, "
                                 f"max {max(r / k for vv, _, r, k in fold_heldout if vv == v):.4f}"
                                 for v in variants if any(vv == v for vv, *_ in fold_heldout)) + "\n")
    lines += ["### Pooled over series, head and non-brain (per class: right (recall))\n",
              recall_table(rows_head, names, columns).replace("| class | N | " + " | ".join(columns),
                                                               "| class | N | " + " | ".join(short[c] for c in columns)), ""]
    lines += ["### Phantoms, apart\n",
              recall_table(rows_phantom, names, columns).replace("| class | N | " + " | ".join(columns),
                                                                  "| class | N | " + " | ".join(short[c] for c in columns)), ""]
    lines += ["### Per source (head + non-brain right/N; phantoms right/N)\n",
              "| source | " + " | ".join(short[c] for c in columns) + " |", "|---|" + "---:|" * len(columns)]
    for s in sorted(by_source):
        cells = []
        for c in columns:
            r, n, pr, pn = by_source[s].get(c, (0, 0, 0, 0))
            cell = f"{r}/{n}" if n else ""
            if pn:
                cell += (" " if cell else "") + f"(ph {pr}/{pn})"
            cells.append(cell)
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines.append("")
    if fold_heldout:
        lines += ["Held-out synthetic series accuracy of each (b) fold model:\n",
                  "| variant | held-out source | right/N |", "|---|---|---:|"]
        lines += [f"| {v} | {s} | {r}/{n} ({r / n:.4f}) |" for v, s, r, n in fold_heldout]
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
