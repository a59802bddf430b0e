"""Header-read throughput of pydicom on the same files as mrsort-benchmark.

python3 benchmarks/pydicom_headers.py DIR [--rounds R]
Reads every file under DIR (hidden and partial names skipped, as mrsort does) with
dcmread(stop_before_pixels=True), best of R rounds, and prints files per second.
"""
import argparse
import os
import time

import pydicom

IGNORED_SUFFIXES = (".part", ".partial", ".tmp")


def files_under(root):
    result = []
    for directory, subdirectories, names in os.walk(root, followlinks=True):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or name.endswith(IGNORED_SUFFIXES):
                continue
            result.append(os.path.join(directory, name))
    return result


def read_all(files):
    read = refused = 0
    for path in files:
        try:
            pydicom.dcmread(path, stop_before_pixels=True)
            read += 1
        except Exception:  # noqa: BLE001 - a refusal is counted, as mrsort counts its own
            refused += 1
    return read, refused


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    files = files_under(args.directory)
    read_all(files)
    best = float("inf")
    for _ in range(args.rounds):
        start = time.perf_counter()
        read, refused = read_all(files)
        best = min(best, time.perf_counter() - start)
    print(f"pydicom {pydicom.__version__} threads=1 files={read} refused={refused} best_of={args.rounds} "
          f"seconds={best:.4f} files_per_second={int((read + refused) / best)}")


if __name__ == "__main__":
    main()
