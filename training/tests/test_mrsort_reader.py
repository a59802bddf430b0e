"""The generated corpus is read by mrsort's own DICOM reader (the Swift one), not only by pydicom.

Needs the mrsort binary: `swift build` first (make test runs the Swift tests before these), or
MRSORT_BIN=/path/to/mrsort.
"""
import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def mrsort():
    path = os.environ.get("MRSORT_BIN", os.path.join(ROOT, ".build", "debug", "mrsort"))
    assert os.access(path, os.X_OK), f"{path} not found: run `swift build` first or set MRSORT_BIN"
    return path


def test_mrsort_reads_every_generated_file(corpus, mrsort):
    out, rows = corpus
    result = subprocess.run([mrsort, "inspect", "--json", out], capture_output=True, text=True, check=True)
    report = json.loads(result.stdout)
    # labels.csv is the only file that is not DICOM.
    assert [os.path.basename(e["path"]) for e in report["errors"]] == ["labels.csv"]
    by_dir = {}
    for image in report["images"]:
        by_dir.setdefault(os.path.relpath(os.path.dirname(image["path"]), out), []).append(image)
    assert set(by_dir) == {row["dir"] for row in rows}
    for row in rows:
        images = by_dir[row["dir"]]
        assert {i["seriesInstanceUID"] for i in images} == {row["series_uid"]}, row["dir"]
        assert len({i["path"] for i in images}) == int(row["n_files"]), row["dir"]
        for image in images:
            assert image["rows"] > 0 and image["columns"] > 0
            assert image.get("imageType"), f"{image['path']}: no ImageType"


def test_mrsort_dataset_labels_every_series(corpus, mrsort, tmp_path):
    out, rows = corpus
    target = tmp_path / "features.safetensors"
    subprocess.run([mrsort, "dataset", out, "--out", str(target), "--minimum-series", "1"], check=True,
                   capture_output=True, text=True)
    from training.forest import dataset as ds
    data = ds.load(str(target))
    assert data.series_dirs == [row["dir"] for row in rows]
    assert set(data.series.tolist()) == set(range(len(rows))), "a series contributed no image"
    sequences = [data.sequences[i] for i in data.sequence]
    expected = {i: row["sequence"] for i, row in enumerate(rows)}
    assert all(sequences[k] == expected[s] for k, s in enumerate(data.series.tolist()))
