"""Small DICOM helpers shared by the realism check, the contact sheets and the tests."""
from __future__ import annotations

import csv
import os

import numpy as np
import pydicom


def read_labels(path: str) -> list:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def series_files(folder: str) -> list:
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if not f.startswith("."))


def frames_of(ds) -> list:
    """Display frames (float 2D or uint8 RGB) of a dataset; Siemens mosaics are split into tiles."""
    try:
        arr = ds.pixel_array
    except Exception:
        return []
    n = int(getattr(ds, "NumberOfFrames", 1) or 1)
    spp = int(getattr(ds, "SamplesPerPixel", 1))
    if spp == 3:
        return [a for a in (arr if n > 1 else [arr])]
    frames = list(arr) if n > 1 else [arr]
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    icpt = float(getattr(ds, "RescaleIntercept", 0) or 0)
    out = [f.astype(np.float32) * slope + icpt for f in frames]
    it = [str(x).upper() for x in getattr(ds, "ImageType", [])]
    if "MOSAIC" in it:
        am = [int(x) for x in getattr(ds, "AcquisitionMatrix", [0, 0, 0, 0])]
        m = max(am) if am else 0
        tiles = []
        for f in out:
            if m and f.shape[0] % m == 0 and f.shape[0] // m > 1:
                k = f.shape[0] // m
                for i in range(k * k):
                    t = f[(i // k) * m:(i // k + 1) * m, (i % k) * m:(i % k + 1) * m]
                    if t.max() > 0:
                        tiles.append(t)
            else:
                tiles.append(f)
        out = tiles or out
    return out


def middle_frame(folder: str):
    """A representative (middle) display frame of the series in ``folder``."""
    files = series_files(folder)
    dss = []
    for f in files:
        try:
            dss.append(pydicom.dcmread(f))
        except Exception:
            continue
    dss.sort(key=lambda d: int(getattr(d, "InstanceNumber", 0) or 0))
    frames = []
    for d in dss:
        frames += frames_of(d)
    if not frames:
        return None
    return frames[len(frames) // 2]


def to_uint8(img) -> np.ndarray:
    """Window a frame to 8 bits (1st-99.5th percentile); RGB passes through."""
    if img.ndim == 3:
        return img.astype(np.uint8)
    lo, hi = np.percentile(img, [0.5, 99.5])
    return (np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def _first(ds, path):
    """Follow a path of (sequence keyword, ...) through item 0 of each sequence."""
    cur = ds
    for kw in path:
        if cur is None or kw not in cur:
            return None
        cur = cur[kw].value
        if isinstance(cur, pydicom.sequence.Sequence):
            cur = cur[0] if len(cur) else None
    return cur


def _num(v):
    try:
        if v is None or v == "":
            return None
        if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
            v = v[0]
        return float(v)
    except (TypeError, ValueError):
        return None


def _tokens(v):
    if v is None:
        return []
    if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
        return [str(x).strip().upper() for x in v if str(x).strip()]
    return [t.strip().upper() for t in str(v).split("\\") if t.strip()]


def header_features(ds) -> dict:
    """Classifier-relevant header values of one file, classic or enhanced (first frame)."""
    sh = _first(ds, ["SharedFunctionalGroupsSequence"])
    pf = _first(ds, ["PerFrameFunctionalGroupsSequence"])

    def fg(*path):
        for base in (pf, sh):
            if base is not None:
                v = _first(base, path)
                if v is not None:
                    return v
        return None

    f = {}
    f["manufacturer"] = str(getattr(ds, "Manufacturer", "")).upper()
    f["image_type"] = _tokens(getattr(ds, "ImageType", None))
    ss = getattr(ds, "ScanningSequence", None)
    sv = getattr(ds, "SequenceVariant", None)
    so = getattr(ds, "ScanOptions", None)
    if ss is None and (0x0021, 0x105A) in ds:  # Siemens XA private SDS copy
        ss = ds[0x0021, 0x105A].value
    f["scanning_sequence"] = _tokens(ss)
    f["sequence_variant"] = _tokens(sv)
    f["scan_options"] = _tokens(so)
    f["mr_acq_type"] = str(getattr(ds, "MRAcquisitionType", "") or "")
    name = getattr(ds, "SequenceName", None) or getattr(ds, "PulseSequenceName", None)
    f["sequence_name"] = str(name or "")
    f["tr"] = _num(getattr(ds, "RepetitionTime", None)) or _num(fg("MRTimingAndRelatedParametersSequence", "RepetitionTime"))
    f["te"] = _num(getattr(ds, "EchoTime", None)) or _num(fg("MREchoSequence", "EffectiveEchoTime"))
    f["ti"] = _num(getattr(ds, "InversionTime", None)) or _num(fg("MRModifierSequence", "InversionTimes"))
    f["fa"] = _num(getattr(ds, "FlipAngle", None)) or _num(fg("MRTimingAndRelatedParametersSequence", "FlipAngle"))
    f["etl"] = _num(getattr(ds, "EchoTrainLength", None)) or _num(fg("MRTimingAndRelatedParametersSequence", "EchoTrainLength"))
    f["thickness"] = _num(getattr(ds, "SliceThickness", None)) or _num(fg("PixelMeasuresSequence", "SliceThickness"))
    ps = getattr(ds, "PixelSpacing", None) or fg("PixelMeasuresSequence", "PixelSpacing")
    f["pixel_spacing"] = _num(ps)
    f["rows"] = _num(getattr(ds, "Rows", None))
    f["cols"] = _num(getattr(ds, "Columns", None))
    iop = getattr(ds, "ImageOrientationPatient", None) or fg("PlaneOrientationSequence", "ImageOrientationPatient")
    f["iop"] = [float(x) for x in iop] if iop is not None else None
    b = getattr(ds, "DiffusionBValue", None)
    if b is None:
        b = fg("MRDiffusionSequence", "DiffusionBValue")
    if b is None and (0x0019, 0x100C) in ds:
        b = ds[0x0019, 0x100C].value
    if b is None and (0x0043, 0x1039) in ds:
        v = ds[0x0043, 0x1039].value
        b = (v[0] if isinstance(v, (list, pydicom.multival.MultiValue)) else v)
        try:
            b = float(b) % 1e9
        except (TypeError, ValueError):
            b = None
    if b is None and (0x2001, 0x1003) in ds:
        b = ds[0x2001, 0x1003].value
    f["b_value"] = _num(b)
    f["photometric"] = str(getattr(ds, "PhotometricInterpretation", ""))
    f["temporal_positions"] = _num(getattr(ds, "NumberOfTemporalPositions", None))
    f["enhanced"] = "PerFrameFunctionalGroupsSequence" in ds
    f["contrast_agent"] = str(getattr(ds, "ContrastBolusAgent", "") or "")
    return f
