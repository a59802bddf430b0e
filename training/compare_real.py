"""Realism check of the synthetic headers against shared/realdata, per class and vendor.

    python -m training.compare_real --synth DIR [--real ../shared/realdata]

For every (sequence class, vendor) present in the real set it compares the
token sets (ImageType, ScanningSequence, SequenceVariant, ScanOptions,
MRAcquisitionType, SequenceName stem) and numeric parameter ranges (TR, TE,
TI, flip angle, ETL, slice thickness, pixel spacing, b-value) and prints
where they disagree: real tokens the generator never writes, and real values
outside the synthetic range.  Phantom series are compared under the class
their headers imply (README: ``header-implied class=``).  The real data is
only read here; nothing is fitted to it.
"""
from __future__ import annotations

import argparse
import os
import re
from collections import defaultdict

import numpy as np
import pydicom

from .contact_sheets import DEFAULT_REAL
from .dicom_util import header_features, read_labels, series_files

TOKEN_FIELDS = ("image_type", "scanning_sequence", "sequence_variant", "scan_options", "mr_acq_type", "seq_stem")
NUM_FIELDS = ("tr", "te", "ti", "fa", "etl", "thickness", "pixel_spacing", "b_value")
VENDOR_OF = {"SIEMENS": "Siemens", "SIEMENS HEALTHINEERS": "Siemens", "GE MEDICAL SYSTEMS": "GE", "PHILIPS MEDICAL SYSTEMS": "Philips",
             "PHILIPS": "Philips", "CANON_MEC": "Canon", "TOSHIBA": "Canon"}


def seq_stem(name: str) -> str:
    """SequenceName without '*', digits and suffixes: '*tfl3d1_16ns' -> 'tfl'."""
    s = name.lstrip("*").lower()
    m = re.match(r"[a-z_]+?(?=\d|_|$)", s)
    return m.group(0) if m else s


def series_headers(folder: str, max_files: int = 4) -> list:
    """Header features of up to ``max_files`` files spread evenly over the series."""
    out = []
    files = series_files(folder)
    if len(files) > max_files:
        files = [files[int(round(i))] for i in np.linspace(0, len(files) - 1, max_files)]
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception:
            continue
        h = header_features(ds)
        h["seq_stem"] = seq_stem(h["sequence_name"]) if h["sequence_name"] else ""
        out.append(h)
    return out


def collect(root: str, rows, key_fn):
    groups = defaultdict(list)
    for r in rows:
        k = key_fn(r)
        if k is None:
            continue
        for h in series_headers(os.path.join(root, r["dir"])):
            groups[k].append(h)
    return groups


def real_class(r):
    m = re.search(r"header-implied class=([a-z0-9_]+)", r.get("reason", ""))
    return m.group(1) if (r.get("subject") == "phantom" and m) else r["sequence"]


def summarise(hs):
    tok = {f: set() for f in TOKEN_FIELDS}
    num = {f: [] for f in NUM_FIELDS}
    for h in hs:
        for f in TOKEN_FIELDS:
            v = h.get(f)
            if isinstance(v, list):
                tok[f].update(v)
            elif v:
                tok[f].add(v)
        for f in NUM_FIELDS:
            if h.get(f) is not None:
                num[f].append(h[f])
    return tok, num


def compare(real_groups, synth_groups):
    """Yield report lines; returns (n_checks, n_disagreements) via the last item."""
    lines = []
    n_check = n_bad = 0
    for key in sorted(real_groups):
        seq, vendor = key
        rt, rn = summarise(real_groups[key])
        sk = synth_groups.get(key) or []
        if not sk:
            lines.append(f"[{seq}/{vendor}] NO synthetic series for this class+vendor")
            n_bad += 1
            continue
        st, sn = summarise(sk)
        lines.append(f"[{seq}/{vendor}] real files={len(real_groups[key])} synthetic files={len(sk)}")
        for f in TOKEN_FIELDS:
            n_check += 1
            miss = sorted(rt[f] - st[f])
            if miss:
                n_bad += 1
                lines.append(f"   {f}: real tokens never generated: {miss}  (synthetic has {sorted(st[f])[:12]})")
        for f in NUM_FIELDS:
            if not rn[f]:
                continue
            n_check += 1
            if not sn[f]:
                n_bad += 1
                lines.append(f"   {f}: real {sorted(set(np.round(rn[f], 2)))[:6]} but synthetic never sets it")
                continue
            lo, hi = min(sn[f]), max(sn[f])
            out = sorted(set(round(v, 2) for v in rn[f] if v < lo * 0.98 or v > hi * 1.02))
            if out:
                n_bad += 1
                lines.append(f"   {f}: real values outside synthetic range [{lo:.4g}, {hi:.4g}]: {out[:8]}")
    return lines, n_check, n_bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.compare_real")
    ap.add_argument("--synth", required=True)
    ap.add_argument("--real", default=DEFAULT_REAL)
    ap.add_argument("--per-group", type=int, default=40, help="synthetic series read per class+vendor")
    a = ap.parse_args(argv)
    real_rows = read_labels(os.path.join(a.real, "labels.csv"))
    real_groups = collect(a.real, real_rows, lambda r: (real_class(r), r["vendor"]) if r["vendor"] in ("Siemens", "GE", "Philips", "Canon") else None)
    srows = read_labels(os.path.join(a.synth, "labels.csv"))
    need = {k for k in real_groups}
    picked = defaultdict(list)
    for r in srows:
        k = (r["sequence"], r["vendor"])
        if k in need and len(picked[k]) < a.per_group:
            picked[k].append(r)
    synth_groups = collect(a.synth, [r for v in picked.values() for r in v], lambda r: (r["sequence"], r["vendor"]))
    lines, n_check, n_bad = compare(real_groups, synth_groups)
    print("\n".join(lines))
    print(f"\n{n_bad} disagreements in {n_check} checks over {len(real_groups)} real class/vendor groups")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
