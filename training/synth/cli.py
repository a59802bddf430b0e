"""Command line: ``python -m training.synth --out DIR --studies N --seed S [--jobs J]``."""
from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import os
import sys
import time
from collections import Counter

from . import anatomy
from .generator import LABEL_COLUMNS, generate_study
from .taxonomy import SEQUENCES


def _work(args):
    out, seed, index, max_images = args
    return index, generate_study(out, seed, index, max_images)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.synth", description=__doc__)
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--studies", type=int, required=True, help="number of studies")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--start", type=int, default=0, help="first study index (to extend a corpus)")
    ap.add_argument("--max-images", type=int, default=16, help="images written per series at most (subsampled like shared/realdata)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    t0 = time.time()
    anatomy.get_phantom()  # build/load once in the parent; workers inherit it (fork)
    tasks = [(a.out, a.seed, i, a.max_images) for i in range(a.start, a.start + a.studies)]
    results = {}
    if a.jobs > 1:
        ctx = mp.get_context("fork")
        with ctx.Pool(a.jobs) as pool:
            for n, (i, rows) in enumerate(pool.imap_unordered(_work, tasks), 1):
                results[i] = rows
                if not a.quiet and (n % 10 == 0 or n == len(tasks)):
                    print(f"{n}/{len(tasks)} studies, {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    else:
        for n, task in enumerate(tasks, 1):
            i, rows = _work(task)
            results[i] = rows
            if not a.quiet and (n % 10 == 0 or n == len(tasks)):
                print(f"{n}/{len(tasks)} studies, {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    path = os.path.join(a.out, "labels.csv")
    with open(path + ".tmp", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=LABEL_COLUMNS)
        w.writeheader()
        for i in sorted(results):
            for r in results[i]:
                w.writerow(r)
    os.replace(path + ".tmp", path)
    counts = Counter(r["sequence"] for rows in results.values() for r in rows)
    n_series = sum(counts.values())
    if not a.quiet:
        print(f"{n_series} series in {a.studies} studies, {time.time() - t0:.1f}s", file=sys.stderr)
        print(" ".join(f"{k}={counts.get(k, 0)}" for k in SEQUENCES), file=sys.stderr)
    return 0
