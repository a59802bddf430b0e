"""Shared fixture: a small corpus that holds every class, generated once per test session."""
import multiprocessing as mp
import os

import pytest

from training.synth import anatomy
from training.synth.generator import LABEL_COLUMNS, generate_study

ALL_STEPS = ["scout", "t1_pre", "t1_iac_pre", "t1_3d_pre", "vibe_pre", "t2", "t2_haste", "t2_3d", "ciss", "flair",
             "flair_3d", "dwi", "swi", "tof", "other_bold", "other_asl", "other_fieldmap", "other_fa", "other_nonhead",
             "other_screenshot", "inject", "perfusion", "t1_post", "t1_iac_post", "t1_3d_post", "vibe_post",
             "t1_post_planes", "t1_iac_post_planes"]
# (vendor, field, enhanced export)
STUDIES = [("Siemens", 3.0, False), ("Philips", 1.5, True), ("GE", 3.0, False), ("Canon", 1.5, False), ("Siemens", 1.5, True)]
SEED = 4242


def _one(args):
    out, i = args
    vendor, field, enh = STUDIES[i]
    return generate_study(out, SEED, i, max_images=4, steps=ALL_STEPS, vendor=vendor, field=field, enhanced=enh)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """Directory and label rows of the coverage corpus."""
    out = str(tmp_path_factory.mktemp("corpus"))
    anatomy.get_phantom()
    with mp.get_context("fork").Pool(min(2, os.cpu_count() or 1)) as pool:
        results = pool.map(_one, [(out, i) for i in range(len(STUDIES))])
    rows = [r for rs in results for r in rs]
    import csv
    with open(os.path.join(out, "labels.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=LABEL_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(out, "labels.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))  # as consumers see them (strings)
    return out, rows
