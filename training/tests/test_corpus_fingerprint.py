"""The generator's output is pinned: a change to it (a draw added, a default changed) shows here,
and the person making it updates FINGERPRINT knowing that corpora made before and after differ
(the shipped models name the commit of the generator they were trained with; NOTES.md).

Pixels are left out (floating-point results may differ in the last bit between CPUs and
libraries); labels and the header values that the forest reads, rounded, are in.
"""
import hashlib
import json
import os

import pydicom

from training.synth.generator import generate_study

# sha256 of the two studies below; update it, with a NOTES.md line, when the generator changes on purpose.
FINGERPRINT = "75524b8f60468858fc2e613446a961ecc47fdd60e1ac0aee30dc64bf7eed5d82"

FIELDS = ["SOPClassUID", "Modality", "Manufacturer", "ManufacturerModelName", "MagneticFieldStrength", "ImageType",
          "SequenceName", "ScanningSequence", "SequenceVariant", "ScanOptions", "MRAcquisitionType", "RepetitionTime",
          "EchoTime", "InversionTime", "FlipAngle", "EchoTrainLength", "SliceThickness", "SpacingBetweenSlices",
          "PixelSpacing", "ImageOrientationPatient", "Rows", "Columns", "NumberOfFrames", "SeriesNumber",
          "InstanceNumber", "SeriesDescription", "ContrastBolusAgent", "BodyPartExamined", "DiffusionBValue"]


def _value(value):
    if isinstance(value, (pydicom.multival.MultiValue, list, tuple)):
        return [_value(v) for v in value]
    if isinstance(value, (float, pydicom.valuerep.DSfloat)):
        return round(float(value), 3)
    if isinstance(value, (int, pydicom.valuerep.IS)):
        return int(value)
    return str(value)


def corpus_fingerprint(out):
    digest = hashlib.sha256()
    for index in range(2):
        for row in generate_study(str(out), seed=3, index=index, max_images=2):
            digest.update(json.dumps(row, sort_keys=True, default=str).encode())
            folder = os.path.join(str(out), row["dir"])
            for name in sorted(os.listdir(folder)):
                ds = pydicom.dcmread(os.path.join(folder, name), stop_before_pixels=True)
                values = {field: _value(ds.get(field)) for field in FIELDS if field in ds}
                digest.update(json.dumps(values, sort_keys=True).encode())
    return digest.hexdigest()


def test_generator_output_is_pinned(tmp_path):
    assert corpus_fingerprint(tmp_path) == FINGERPRINT


def _series_by_description(out, rows):
    """Per series (by its step's description): the forest's header values and a digest of the pixels."""
    result = {}
    for row in rows:
        folder = os.path.join(str(out), row["dir"])
        values = []
        for name in sorted(os.listdir(folder)):
            ds = pydicom.dcmread(os.path.join(folder, name))
            header = {field: _value(ds.get(field)) for field in FIELDS if field in ds and field not in ("SeriesNumber",)}
            values.append((header, hashlib.sha256(ds.PixelData).hexdigest()))
        result[(row["sequence"], row["series_description"])] = values
    return result


def test_a_step_added_to_a_protocol_changes_no_other_series(tmp_path):
    """Each protocol step and each series draw from their own streams (the mutation caught: one
    stream for the whole study, where the added step's draws shift every later series)."""
    plain = generate_study(str(tmp_path / "plain"), seed=4, index=0, max_images=2, steps=["t1_pre", "flair"],
                           vendor="Siemens", field=3.0, enhanced=False)
    added = generate_study(str(tmp_path / "added"), seed=4, index=0, max_images=2, steps=["t1_pre", "dwi", "flair"],
                           vendor="Siemens", field=3.0, enhanced=False)
    before = _series_by_description(tmp_path / "plain", plain)
    after = _series_by_description(tmp_path / "added", added)
    assert set(before) <= set(after)
    for key, series in before.items():
        assert after[key] == series, key
