"""Header geometry agrees with what the pixels show."""
import os
from collections import defaultdict

import numpy as np

from training.synth.geometry import orientation_label
from training.tests.helpers import head_mask, load_frames, lr_symmetry, patient_coords

HEAD_SEQ = {"t1_pre", "t1_post", "t1_3d_pre", "t1_3d_post", "t2", "flair", "flair_3d", "t2_3d", "t2_haste", "vibe_pre", "vibe_post"}


def test_orientation_rule():
    assert orientation_label([1, 0, 0, 0, 1, 0]) == "axial"
    assert orientation_label([1, 0, 0, 0, 0, -1]) == "coronal"
    assert orientation_label([0, 1, 0, 0, 0, -1]) == "sagittal"
    c, s = np.cos(np.deg2rad(45)), np.sin(np.deg2rad(45))
    assert orientation_label([1, 0, 0, 0, c, s]) == "oblique"


def _series(corpus, orient):
    out, rows = corpus
    for r in rows:
        if r["sequence"] in HEAD_SEQ and r["orientation"] == orient:
            yield r, load_frames(os.path.join(out, r["dir"]))


def test_axial_and_coronal_images_show_a_left_right_symmetric_head(corpus):
    sym = []
    for orient in ("axial", "coronal"):
        for r, frames in _series(corpus, orient):
            img = frames[len(frames) // 2][0]
            sym.append(lr_symmetry(head_mask(img)))
    assert len(sym) >= 5
    assert np.median(sym) > 0.85, sym


def test_sagittal_images_are_not_left_right_symmetric(corpus):
    """A sagittal head (face on one side, occiput and neck on the other) is far less mirror-symmetric."""
    ax, sag = [], []
    for r, frames in _series(corpus, "axial"):
        ax.append(lr_symmetry(head_mask(frames[len(frames) // 2][0])))
    for r, frames in _series(corpus, "sagittal"):
        sag.append(lr_symmetry(head_mask(frames[len(frames) // 2][0])))
    assert sag and ax
    assert np.median(sag) < np.median(ax) - 0.05, (sag, ax)


def test_head_position_agrees_across_series_in_patient_coordinates(corpus):
    """Within a study, the head's midline (x) and vertex (z) computed from pixels + geometry agree."""
    out, rows = corpus
    mid_x = defaultdict(list)
    vertex = defaultdict(list)
    for orient in ("axial", "coronal", "sagittal"):
        for r, frames in _series(corpus, orient):
            study = os.path.dirname(r["dir"])
            img, ipp, iop, ps = frames[len(frames) // 2]
            mask = head_mask(img)
            pts = patient_coords(mask, ipp, iop, ps)
            if len(pts) < 500:
                continue
            clipped_lr = mask[:, :3].any() or mask[:, -3:].any()
            if orient in ("axial", "coronal") and not clipped_lr:
                mid_x[study].append((pts[:, 0].min() + pts[:, 0].max()) / 2)
            if orient in ("coronal", "sagittal") and not mask[:3].any():
                # the vertex: highest head point near the middle of the slice
                vertex[study].append(np.percentile(pts[:, 2], 99.5))
    n = 0
    for study, xs in mid_x.items():
        if len(xs) >= 2:
            n += 1
            assert np.max(np.abs(np.array(xs) - np.median(xs))) < 10.0, (study, xs)
    for study, zs in vertex.items():
        if len(zs) >= 2:
            n += 1
            # coronal slices are not all through the vertex: allow the skull's curvature
            assert np.max(np.abs(np.array(zs) - np.median(zs))) < 25.0, (study, zs)
    assert n >= 3
