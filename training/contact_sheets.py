"""Contact sheets: real slice beside synthetic slices, one row per class.

    python -m training.contact_sheets --synth DIR [--real ../shared/realdata] [--out training/figures]

Writes ``figures/contact_<class>.png`` (real examples first where
shared/realdata has the class, then synthetic examples across vendors and
orientations) and ``figures/overview.png`` (one real and three synthetic per
class).
"""
from __future__ import annotations

import argparse
import os
from collections import defaultdict

import numpy as np
from PIL import Image, ImageDraw

from .dicom_util import middle_frame, read_labels, to_uint8
from .synth.taxonomy import SEQUENCES

TILE = 192
DEFAULT_REAL = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "realdata")


def _tile(img, caption: str, colour) -> Image.Image:
    a = to_uint8(img)
    im = Image.fromarray(a).convert("RGB")
    w, h = im.size
    s = TILE / max(w, h)
    im = im.resize((max(1, int(w * s)), max(1, int(h * s))), Image.BILINEAR)
    canvas = Image.new("RGB", (TILE, TILE + 14), (0, 0, 0))
    canvas.paste(im, ((TILE - im.size[0]) // 2, (TILE - im.size[1]) // 2))
    d = ImageDraw.Draw(canvas)
    d.rectangle([0, TILE, TILE, TILE + 14], fill=colour)
    d.text((2, TILE + 1), caption[:34], fill=(255, 255, 255))
    return canvas


def _row(tiles, label):
    w = 110 + len(tiles) * (TILE + 4)
    row = Image.new("RGB", (max(w, 110 + TILE), TILE + 16), (25, 25, 25))
    d = ImageDraw.Draw(row)
    d.text((4, TILE // 2), label, fill=(255, 255, 0))
    for i, t in enumerate(tiles):
        row.paste(t, (110 + i * (TILE + 4), 1))
    return row


def _stack(rows):
    W = max(r.size[0] for r in rows)
    H = sum(r.size[1] for r in rows)
    out = Image.new("RGB", (W, H), (25, 25, 25))
    y = 0
    for r in rows:
        out.paste(r, (0, y))
        y += r.size[1]
    return out


def real_examples(real_dir):
    res = defaultdict(list)
    path = os.path.join(real_dir, "labels.csv")
    if not os.path.exists(path):
        return res
    for r in read_labels(path):
        if r.get("pixels") != "real" or r.get("subject") == "phantom":
            continue
        res[r["sequence"]].append(r)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.contact_sheets")
    ap.add_argument("--synth", required=True, help="corpus written by python -m training.synth")
    ap.add_argument("--real", default=DEFAULT_REAL)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "figures"))
    ap.add_argument("--per-class", type=int, default=6)
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    synth = defaultdict(list)
    for r in read_labels(os.path.join(a.synth, "labels.csv")):
        synth[r["sequence"]].append(r)
    real = real_examples(a.real)
    overview = []
    for seq in SEQUENCES:
        tiles_r, tiles_s = [], []
        for r in real.get(seq, [])[:3]:
            img = middle_frame(os.path.join(a.real, r["dir"]))
            if img is not None:
                tiles_r.append(_tile(img, f"REAL {r['vendor']} {r['orientation']}", (150, 30, 30)))
        rows = synth.get(seq, [])
        # spread over vendors / orientations / subtypes
        seen, chosen = set(), []
        for r in rows:
            k = (r["vendor"], r["orientation"], r["subtype"])
            if k not in seen:
                seen.add(k)
                chosen.append(r)
        chosen = chosen[:a.per_class]
        for r in chosen:
            img = middle_frame(os.path.join(a.synth, r["dir"]))
            if img is not None:
                tiles_s.append(_tile(img, f"syn {r['vendor']} {r['orientation'][:3]} {r['subtype']}", (30, 70, 150)))
        if not tiles_r and not tiles_s:
            continue
        _stack([_row(tiles_r + tiles_s, seq)]).save(os.path.join(a.out, f"contact_{seq}.png"))
        overview.append(_row(tiles_r[:1] + tiles_s[:3], seq))
    if overview:
        _stack(overview).save(os.path.join(a.out, "overview.png"))
    print(f"wrote {len(overview)} class sheets to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
