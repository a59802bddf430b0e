"""training.deidentify on a few real files of ../shared/realdata (issue 23)."""
import csv
import hashlib
import os
import shutil

import pydicom
import pytest

from training import deidentify

REALDATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "realdata")
# A classic Siemens series (CSA headers, private b-value group), a Philips enhanced multi-frame one.
SERIES = ["dcm_qa__S22_sag_asc_35sl", "dcm_qa_philips_enh__S2201_DTI_S2MB2"]
DESCRIPTIONS = ["SeriesDescription", "StudyDescription", "ProtocolName", "ImageComments",
                "PerformedProcedureStepDescription", "RequestedProcedureDescription"]

pytestmark = pytest.mark.skipif(not os.path.isdir(REALDATA), reason="../shared/realdata is not here")


def private_tags(ds):
    found = []
    for elem in ds.iterall():
        if elem.tag.is_private:
            found.append(elem.tag)
    return found


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture()
def tree(tmp_path):
    """A small source tree: two files of each series and the labels' rows."""
    src = tmp_path / "src"
    rows = [r for r in csv.DictReader(open(os.path.join(REALDATA, "labels.csv"))) if r["dir"] in SERIES]
    assert len(rows) == len(SERIES)
    for series in SERIES:
        (src / series).mkdir(parents=True)
        for name in sorted(os.listdir(os.path.join(REALDATA, series)))[:2]:
            shutil.copy(os.path.join(REALDATA, series, name), src / series / name)
    with open(src / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return src, rows


def pairs(src, dst):
    for root, _, files in os.walk(src):
        for name in files:
            if name != "labels.csv":
                rel = os.path.relpath(os.path.join(root, name), src)
                yield os.path.join(src, rel), os.path.join(dst, rel)


def test_deidentified_copy(tree, tmp_path):
    src, rows = tree
    before = {p: sha(p) for p, _ in pairs(src, tmp_path / "dst")}
    dst = tmp_path / "dst"
    deidentify.main([str(src), str(dst)])
    assert {p: sha(p) for p in before} == before, "the source was modified"
    checked = 0
    for original_path, copy_path in pairs(src, dst):
        original, copy = pydicom.dcmread(original_path), pydicom.dcmread(copy_path)
        assert private_tags(original), f"{original_path}: the test needs files with private tags"
        assert private_tags(copy) == []
        for keyword in DESCRIPTIONS:
            assert keyword not in copy, keyword
        assert not copy.get("ContrastBolusAgent")
        assert copy.PatientName != original.get("PatientName") and str(copy.PatientID).startswith("ANON")
        assert copy.PatientIdentityRemoved == "YES"
        assert copy.PixelData == original.PixelData
        assert copy.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        for keyword in ["SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID"]:
            assert copy.get(keyword) == original.get(keyword), keyword
        # what a classifier reads and the profile keeps
        for keyword in ["ImageType", "ScanningSequence", "SequenceVariant", "SequenceName", "RepetitionTime",
                        "EchoTime", "Manufacturer", "ImageOrientationPatient", "PerFrameFunctionalGroupsSequence"]:
            assert copy.get(keyword) == original.get(keyword), keyword
        if original.get("StudyDate"):
            assert copy.StudyDate != original.StudyDate
        checked += 1
    assert checked == 4
    copied = list(csv.DictReader(open(dst / "labels.csv")))
    assert [r["series_uid"] for r in copied] == [r["series_uid"] for r in rows]


def test_replace_uids_consistently(tree, tmp_path):
    src, rows = tree
    dst = tmp_path / "dst"
    deidentify.main([str(src), str(dst), "--replace-uids", "--remove", "SequenceName"])
    labels = {r["dir"]: r["series_uid"] for r in csv.DictReader(open(dst / "labels.csv"))}
    for series in SERIES:
        uids = set()
        for name in os.listdir(dst / series):
            copy = pydicom.dcmread(dst / series / name)
            original = pydicom.dcmread(src / series / name)
            assert copy.SeriesInstanceUID != original.SeriesInstanceUID
            assert copy.SOPInstanceUID == copy.file_meta.MediaStorageSOPInstanceUID
            assert copy.SOPClassUID == original.SOPClassUID  # DICOM-defined UIDs stay
            assert "SequenceName" not in copy
            uids.add(copy.SeriesInstanceUID)
        assert uids == {labels[series]}
