"""The coverage corpus: every class, valid DICOM, labels that match the headers."""
import os
import shutil
import subprocess
from collections import defaultdict

import numpy as np
import pydicom

from training.dicom_util import header_features
from training.synth.geometry import series_orientation
from training.synth.taxonomy import ORIENTATIONS, SEQUENCES, VENDORS

MR = "1.2.840.10008.5.1.4.1.1.4"
EMR = "1.2.840.10008.5.1.4.1.1.4.1"
SC = "1.2.840.10008.5.1.4.1.1.7"


def _files(out, rows):
    for r in rows:
        d = os.path.join(out, r["dir"])
        for f in sorted(os.listdir(d)):
            yield r, os.path.join(d, f)


def test_every_class_orientation_and_vendor(corpus):
    _, rows = corpus
    seqs = {r["sequence"] for r in rows}
    assert seqs == set(SEQUENCES), set(SEQUENCES) - seqs
    assert {r["orientation"] for r in rows} == set(ORIENTATIONS)
    assert {r["vendor"] for r in rows} == set(VENDORS)
    subtypes = {r["subtype"] for r in rows if r["sequence"] == "other"}
    for need in ("bold", "fa", "screenshot"):
        assert need in subtypes
    assert any(s.startswith("asl") for s in subtypes)
    assert any(s.startswith("fieldmap") for s in subtypes)
    assert any(s.startswith("nonhead") for s in subtypes)


def test_dcmdump_reads_every_file_without_warnings(corpus):
    out, rows = corpus
    exe = shutil.which("dcmdump")
    assert exe, "DCMTK's dcmdump must be installed (apt-get install dcmtk)"
    paths = [p for _, p in _files(out, rows)]
    assert len(paths) > 300
    for i in range(0, len(paths), 200):
        chunk = paths[i:i + 200]
        res = subprocess.run([exe, "-dc", *chunk], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr[:2000]
        assert res.stderr.strip() == "", res.stderr[:2000]
        assert "E: " not in res.stdout and "W: " not in res.stdout


def test_sop_classes_uids_and_hierarchy(corpus):
    out, rows = corpus
    sops = set()
    by_study = defaultdict(set)
    enhanced = rgb_sc = 0
    syntaxes = defaultdict(int)
    for r, p in _files(out, rows):
        ds = pydicom.dcmread(p)
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPInstanceUID not in sops
        sops.add(ds.SOPInstanceUID)
        assert ds.SeriesInstanceUID == r["series_uid"]
        by_study[os.path.dirname(r["dir"])].add(ds.StudyInstanceUID)
        assert ds.Modality in ("MR", "OT")
        if ds.SOPClassUID == EMR:
            enhanced += 1
            assert int(ds.NumberOfFrames) == len(ds.PerFrameFunctionalGroupsSequence)
            assert r["enhanced"] == "1"
        elif ds.SOPClassUID == SC:
            rgb_sc += 1
            assert ds.PhotometricInterpretation == "RGB" and r["subtype"] == "screenshot"
        else:
            assert ds.SOPClassUID == MR
        # The pixels decode to the shape and range the header declares, and are not blank.
        pixels = ds.pixel_array
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        samples = int(getattr(ds, "SamplesPerPixel", 1))
        expected = (frames,) * (frames > 1) + (int(ds.Rows), int(ds.Columns)) + (samples,) * (samples > 1)
        assert pixels.shape == expected, (p, pixels.shape, expected)
        assert int(pixels.max()) < 2 ** int(ds.BitsStored), p
        assert pixels.max() > pixels.min(), (p, "a blank image")
        # The transfer syntax the labels name is the one the file has.
        syntax = ds.file_meta.TransferSyntaxUID
        want = {"implicit": "1.2.840.10008.1.2", "explicit": "1.2.840.10008.1.2.1"}[r["transfer_syntax"]]
        assert syntax == want, (p, syntax, r["transfer_syntax"])
        syntaxes[syntax] += 1
    assert all(len(v) == 1 for v in by_study.values())
    assert enhanced > 0 and rgb_sc > 0
    assert set(syntaxes) == {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}, dict(syntaxes)


def test_labels_match_headers(corpus):
    out, rows = corpus
    for r in rows:
        d = os.path.join(out, r["dir"])
        feats, iops = [], []
        for f in sorted(os.listdir(d)):
            ds = pydicom.dcmread(os.path.join(d, f), stop_before_pixels=True)
            h = header_features(ds)
            feats.append(h)
            if "PerFrameFunctionalGroupsSequence" in ds:
                sh = ds.SharedFunctionalGroupsSequence[0]
                for fg in ds.PerFrameFunctionalGroupsSequence:
                    src = fg if "PlaneOrientationSequence" in fg else sh
                    if "PlaneOrientationSequence" in src:
                        iops.append([float(x) for x in src.PlaneOrientationSequence[0].ImageOrientationPatient])
            elif "ImageOrientationPatient" in ds:
                iops.append([float(x) for x in ds.ImageOrientationPatient])
        want = series_orientation(iops) if iops else "oblique"
        assert r["orientation"] == want, (r["dir"], r["sequence"])
        assert int(r["n_files"]) == len(feats)
        seq = r["sequence"]
        f0 = feats[0]
        if seq == "dwi":
            assert any(h["b_value"] is not None and h["b_value"] > 0 for h in feats) or r["enhanced"] == "1"
        if seq in ("t1_3d_pre", "t1_3d_post", "t2_3d", "flair_3d", "ciss", "tof", "vibe_pre", "vibe_post"):
            assert f0["mr_acq_type"] == "3D"
        if seq in ("t1_pre", "t2", "flair", "t1_iac_pre", "t1_iac_post", "t2_haste"):
            assert f0["mr_acq_type"] == "2D"
        if seq == "flair":
            assert f0["ti"] and f0["ti"] > 1500 and f0["tr"] > 6000
        if seq == "t2":
            assert f0["te"] >= 70
        if seq == "scout" and r["subtype"] == "3plane":
            assert r["orientation"] == "oblique"
        if seq == "other" and r["subtype"] == "screenshot":
            assert f0["photometric"] == "RGB"
        if r["contrast_agent"]:
            assert f0["contrast_agent"] == r["contrast_agent"]
        assert f0["manufacturer"].split()[0].upper()[:3] in {"SIE", "GE ", "PHI", "CAN", "TOS"} or f0["manufacturer"].startswith("GE")
