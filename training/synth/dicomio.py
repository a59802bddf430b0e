"""DICOM writing: classic MR Image Storage, Enhanced MR Image Storage, Secondary Capture.

Pixel values are scaled to realistic stored ranges (12-bit or 16-bit, with
RescaleSlope/Intercept on some vendors, Siemens phase 0..4095 with slope 2 and
intercept -4096, ADC in 10^-6 mm^2/s, RGB 8-bit), then written with pydicom
using proper file meta (explicit VR little endian, some implicit VR).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from .uids import make_uid

MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
IMPL_UID = "1.2.826.0.1.3680043.10.1399"  # implementation class UID of this generator
IMPL_VERSION = "MRSORT_SYNTH_1"


@dataclass
class StudyInfo:
    study_uid: str
    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    age: str
    weight: float
    study_date: str
    study_time: str
    accession: str
    study_id: str
    study_description: str
    body_part: str | None


def _ds_str(v, nd=6):
    """Decimal string within 16 characters."""
    s = f"{float(v):.{nd}g}"
    while len(s) > 16:
        nd -= 1
        s = f"{float(v):.{nd}g}"
    return s


def _fmt_time(seconds: float) -> str:
    seconds = seconds % 86400
    h = int(seconds // 3600)
    m = int(seconds % 3600 // 60)
    s = seconds % 60
    return f"{h:02d}{m:02d}{s:09.6f}"


# ----------------------------------------------------------------------------- pixel storage

def store_pixels(rng, ser, vendor: str):
    """Convert the float frames of a series to stored integers.

    Returns (list of arrays, dict of pixel-module values, slope, intercept).
    """
    kind = ser.kind
    frames = [f.pixels for f in ser.frames]
    if kind == "RGB":
        return [np.ascontiguousarray(f.astype(np.uint8)) for f in frames], dict(
            SamplesPerPixel=3, PhotometricInterpretation="RGB", BitsAllocated=8, BitsStored=8, HighBit=7,
            PixelRepresentation=0, PlanarConfiguration=0), 1.0, 0.0
    slope, intercept = 1.0, 0.0
    signed = False
    if kind == "P":
        if vendor == "Siemens":
            stored = [np.clip(np.round((f / np.pi * 4096 + 4096) / 2), 0, 4095) for f in frames]
            slope, intercept, bits = 2.0, -4096.0, 12
        elif vendor == "GE":
            stored = [np.round(f * 1000) for f in frames]
            bits, signed = 16, True
        else:
            slope = float(np.round(2 * np.pi / 4095, 8))
            intercept = -np.pi
            stored = [np.clip(np.round((f - intercept) / slope), 0, 4095) for f in frames]
            bits = 12
    elif kind == "ADC":
        stored = [np.clip(np.round(f), 0, 4095) for f in frames]
        bits = 12 if rng.random() < 0.7 else 16
        if vendor == "Philips" and rng.random() < 0.5:
            slope = float(np.round(rng.uniform(0.5, 2.5), 5))
            stored = [np.clip(np.round(f / slope), 0, 4095) for f in frames]
    elif kind == "MAP" and ser.subtype.startswith("fa"):
        stored = [np.clip(np.round(f * 1000), 0, 1000) for f in frames]
        bits = 12
    else:
        allv = np.concatenate([f.ravel()[::7] for f in frames])
        p = float(np.percentile(allv, 99.9)) or 1.0
        if vendor == "GE" and rng.random() < 0.7:
            bits, signed = 16, True
            target = rng.uniform(800, 4000)
        else:
            bits = 12 if rng.random() < 0.8 else 16
            target = rng.uniform(0.55, 0.9) * (4095 if bits == 12 else rng.choice([4095, 16383, 32767]))
        scale = target / p
        cap = 4095 if bits == 12 else 32767
        stored = [np.clip(np.round(f * scale), 0, cap) for f in frames]
        if vendor == "Philips" and rng.random() < 0.8:
            slope = float(np.round(rng.uniform(1.0, 3.0), 5))
            intercept = 0.0
        elif vendor in ("Siemens", "Canon", "GE") and rng.random() < 0.15:
            slope, intercept = 1.0, 0.0
    dtype = np.int16 if signed else np.uint16
    stored = [np.ascontiguousarray(s.astype(dtype)) for s in stored]
    bits_stored = 16 if (bits == 16) else 12
    return stored, dict(SamplesPerPixel=1, PhotometricInterpretation="MONOCHROME2", BitsAllocated=16, BitsStored=bits_stored,
                        HighBit=bits_stored - 1, PixelRepresentation=1 if signed else 0), slope, intercept


def _window(arr, slope, intercept):
    v = arr.astype(np.float32) * slope + intercept
    lo, hi = np.percentile(v, [1, 99.5])
    return _ds_str((lo + hi) / 2, 5), _ds_str(max(hi - lo, 1.0), 5)


# ----------------------------------------------------------------------------- common modules

def _base(study: StudyInfo, scanner, ser, meta, series_uid, for_uid, series_no, sop_class, rng, series_time):
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.StudyDate = study.study_date
    ds.SeriesDate = study.study_date
    ds.AcquisitionDate = study.study_date
    ds.ContentDate = study.study_date
    ds.StudyTime = study.study_time
    ds.SeriesTime = _fmt_time(series_time)
    ds.AccessionNumber = study.accession
    ds.Modality = "MR"
    ds.Manufacturer = scanner.manufacturer
    if scanner.institution:
        ds.InstitutionName = scanner.institution
    ds.ReferringPhysicianName = ""
    ds.StationName = scanner.station
    ds.StudyDescription = study.study_description
    ds.SeriesDescription = meta.description
    ds.ManufacturerModelName = scanner.model
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = study.birth_date
    ds.PatientSex = study.sex
    ds.PatientAge = study.age
    ds.PatientWeight = _ds_str(study.weight, 4)
    if study.body_part:
        ds.BodyPartExamined = study.body_part
    ds.SoftwareVersions = scanner.software
    ds.ProtocolName = meta.protocol
    ds.PatientPosition = "HFS" if not ser.subtype.startswith("nonhead_knee") else "FFS"
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = study.study_id
    ds.SeriesNumber = series_no
    ds.FrameOfReferenceUID = for_uid
    ds.PositionReferenceIndicator = ""
    return ds


def _mr_acq(ds, ser, meta, scanner, classic: bool):
    a = ser.acq
    if a.get("mr_type") is None:
        return
    if classic:
        if meta.scanning_sequence is not None:
            ds.ScanningSequence = meta.scanning_sequence
            ds.SequenceVariant = meta.sequence_variant
            ds.ScanOptions = meta.scan_options
        ds.MRAcquisitionType = a["mr_type"]
        if meta.sequence_name:
            ds.SequenceName = meta.sequence_name
        if ser.thickness is not None:
            ds.SliceThickness = _ds_str(ser.thickness, 5)
        if a.get("tr") is not None:
            tr = a["tr"]
            ds.RepetitionTime = (repr(float(np.float32(tr))) if scanner.vendor == "Philips" else _ds_str(round(tr, 2)))[:16]
        if a.get("te") is not None:
            ds.EchoTime = _ds_str(round(a["te"], 2))
        if a.get("ti") is not None and not (scanner.vendor == "Philips" and a.get("family") in ("tfe", "mprage")):
            ds.InversionTime = _ds_str(round(a["ti"], 1))
        ds.NumberOfAverages = "1"
        ds.ImagingFrequency = _ds_str(42.577478 * scanner.field, 9)
        ds.ImagedNucleus = "1H"
        ds.EchoNumbers = "1"
        ds.MagneticFieldStrength = _ds_str(scanner.field, 3)
        if ser.spacing is not None:
            ds.SpacingBetweenSlices = _ds_str(ser.spacing, 6)
        if a.get("etl") is not None:
            ds.EchoTrainLength = int(a["etl"])
        if a.get("pixel_bw"):
            ds.PixelBandwidth = _ds_str(round(a["pixel_bw"], 1))
        if a.get("fa") is not None:
            ds.FlipAngle = _ds_str(round(a["fa"], 1))
        am = ser.acq_matrix or (0, 0)
        if a.get("pe_axis", 0) == 0:
            ds.AcquisitionMatrix = [int(am[0]), 0, 0, int(am[1])]
            ds.InPlanePhaseEncodingDirection = "COL"
        else:
            ds.AcquisitionMatrix = [0, int(am[0]), int(am[1]), 0]
            ds.InPlanePhaseEncodingDirection = "ROW"
        ds.VariableFlipAngleFlag = "Y" if a.get("family") in ("space", "spcir") else "N"
        ds.dBdt = _ds_str(0.0)
        ds.SAR = _ds_str(round(0.2 + (sum(map(ord, meta.description)) % 100) / 100.0, 3))
    ds.ReceiveCoilName = {"Siemens": "HeadNeck_20", "GE": "HNS Head", "Philips": "SENSE-Head-8", "Canon": "Head SPEEDER"}[scanner.vendor]
    ds.TransmitCoilName = "Body"


def _private(ds, meta, extra=()):
    for grp, creator, elem, vr, val in list(meta.private) + list(extra):
        blk = ds.private_block(grp, creator, create=True)
        blk.add_new(elem, vr, val)


# ----------------------------------------------------------------------------- writers

def _file_meta(sop_class, sop_uid, implicit=False):
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = sop_class
    fm.MediaStorageSOPInstanceUID = sop_uid
    fm.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    fm.ImplementationClassUID = IMPL_UID
    fm.ImplementationVersionName = IMPL_VERSION
    return fm


def _save(ds, path, implicit):
    ds.file_meta = _file_meta(ds.SOPClassUID, ds.SOPInstanceUID, implicit)
    ds.preamble = b"\x00" * 128
    tmp = path + ".tmp"
    ds.save_as(tmp, enforce_file_format=True)
    os.replace(tmp, path)


def write_classic(out_dir, study, scanner, ser, meta, series_uid, for_uid, series_no, uid_key, rng, series_time,
                  implicit=False, contrast_agent=None):
    """One file per frame. Returns the list of written paths."""
    stored, pix, slope, intercept = store_pixels(rng, ser, scanner.vendor)
    sc = ser.kind == "RGB" and ser.subtype == "screenshot"
    sop_class = SECONDARY_CAPTURE if sc else MR_STORAGE
    paths = []
    ge_b_offset = 1000000000 if rng.random() < 0.5 else 0  # newer GE releases bias the b-value by 1e9
    base = _base(study, scanner, ser, meta, series_uid, for_uid, series_no, sop_class, rng, series_time)
    if sc:
        base.ConversionType = "WSD"
        base.Modality = str(rng.choice(["MR", "OT"]))
        for k in ("FrameOfReferenceUID", "PositionReferenceIndicator"):
            if k in base:
                del base[k]
    for i, (fr, arr) in enumerate(zip(ser.frames, stored)):
        ds = Dataset()
        ds.update(base)
        ds.ImageType = list(meta.image_type) + [t for t in fr.image_tokens if t not in meta.image_type and t != "MIP"]
        ds.SOPInstanceUID = make_uid(uid_key, "sop", i)
        ds.InstanceCreationDate = study.study_date
        ds.ContentTime = _fmt_time(series_time + 2 + i * 0.1)
        ds.AcquisitionTime = _fmt_time(series_time + (fr.temporal or 1) * (ser.acq.get("tr") or 1000) / 1000.0)
        ds.AcquisitionNumber = int(fr.temporal or 1)
        ds.InstanceNumber = int(fr.instance)
        if not sc:
            _mr_acq(ds, ser, meta, scanner, classic=True)
            if fr.echo_time is not None:
                ds.EchoTime = _ds_str(round(fr.echo_time, 3))
            if contrast_agent is not None:
                ds.ContrastBolusAgent = contrast_agent
            if fr.iop is not None:
                ds.ImagePositionPatient = [_ds_str(round(v, 5), 9) for v in fr.ipp]
                ds.ImageOrientationPatient = [_ds_str(round(v, 8), 9) for v in fr.iop]
                n = np.cross(fr.iop[:3], fr.iop[3:])
                ds.SliceLocation = _ds_str(round(float(np.dot(n, fr.ipp)), 5), 9)
            if ser.n_temporal:
                if scanner.vendor in ("GE", "Philips") or fr.temporal:
                    ds.NumberOfTemporalPositions = int(ser.n_temporal)
                if fr.temporal:
                    ds.TemporalPositionIdentifier = int(fr.temporal)
            extra = []
            if fr.b_value is None and scanner.vendor == "GE":
                extra.append((0x0043, "GEMS_PARM_01", 0x39, "IS", [0, 0, 0, 0]))
            if fr.b_value is None and scanner.vendor == "Philips" and ser.acq.get("mr_type"):
                extra.append((0x2001, "Philips Imaging DD 001", 0x03, "FL", 0.0))
                if not scanner.software.startswith(("3.", "2.", "1.")):
                    ds.DiffusionBValue = 0.0
            if fr.b_value is not None:
                b = float(fr.b_value)
                if scanner.vendor == "Siemens":
                    extra.append((0x0019, "SIEMENS MR HEADER", 0x0C, "IS", str(int(b))))
                    if meta.sequence_name and "{b}" in meta.sequence_name:
                        d = 0 if fr.b_dir is None else 1 + [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)].index(tuple(fr.b_dir))
                        name = meta.sequence_name.format(b=int(b), d=d)
                        if b == 0:
                            name = "*ep_b0"
                        elif fr.b_dir is None and "#" in name:
                            name = name.split("#")[0] + "t"
                        ds.SequenceName = name
                    if fr.trace and "TRACEW" not in ds.ImageType:
                        ds.ImageType = ["DERIVED", "PRIMARY", "DIFFUSION", "TRACEW"] + list(ds.ImageType)[4:]
                elif scanner.vendor == "GE":
                    extra.append((0x0043, "GEMS_PARM_01", 0x39, "IS", [int(b) + ge_b_offset, 8, 0, 0]))
                elif scanner.vendor == "Philips":
                    extra.append((0x2001, "Philips Imaging DD 001", 0x03, "FL", b))
                    extra.append((0x2001, "Philips Imaging DD 001", 0x04, "CS", "I" if (fr.b_dir is None or b == 0) else "O"))
                    ds.DiffusionBValue = b
                else:
                    if b > 0:
                        ds.DiffusionBValue = b
                        ds.ImageComments = f"b={int(b)}(0.000,0.000,0.000)" if fr.b_dir is None else \
                            "b={}({:.3f},{:.3f},{:.3f})".format(int(b), *fr.b_dir)
            if fr.mosaic_tiles and scanner.vendor == "Siemens":
                extra.append((0x0019, "SIEMENS MR HEADER", 0x0A, "US", int(fr.mosaic_tiles)))
            if scanner.vendor == "Siemens":
                extra.append((0x0051, "SIEMENS MR HEADER", 0x0B, "LO", f"{ser.acq_matrix[0]}p*{ser.acq_matrix[1]}"))
            _private(ds, meta, extra)
        if ser.pixel_spacing is not None:
            ds.PixelSpacing = [_ds_str(round(v, 6), 9) for v in ser.pixel_spacing]
        ds.Rows, ds.Columns = int(arr.shape[0]), int(arr.shape[1])
        for k, v in pix.items():
            setattr(ds, k, v)
        if pix["SamplesPerPixel"] == 1:
            wc, ww = _window(arr, slope, intercept)
            ds.WindowCenter, ds.WindowWidth = wc, ww
            if slope != 1.0 or intercept != 0.0 or rng.random() < 0.3:
                ds.RescaleIntercept = _ds_str(intercept)
                ds.RescaleSlope = _ds_str(slope, 8)
                ds.RescaleType = "US"
        else:
            ds.BurnedInAnnotation = "YES"
        ds.LossyImageCompression = "00"
        ds.PixelData = arr.tobytes()
        path = os.path.join(out_dir, f"IM{i + 1:05d}.dcm")
        _save(ds, path, implicit)
        paths.append(path)
    return paths


def _seq_item(**kw):
    d = Dataset()
    for k, v in kw.items():
        setattr(d, k, v)
    return d


def write_enhanced(out_dir, study, scanner, ser, meta, series_uid, for_uid, series_no, uid_key, rng, series_time,
                   contrast_agent=None):
    """All frames in one Enhanced MR Image Storage file (Siemens XA / Philips R5 style)."""
    stored, pix, slope, intercept = store_pixels(rng, ser, scanner.vendor)
    ds = _base(study, scanner, ser, meta, series_uid, for_uid, series_no, ENHANCED_MR_STORAGE, rng, series_time)
    a = ser.acq
    ds.SOPInstanceUID = make_uid(uid_key, "sop", 0)
    ds.ImageType = list(meta.image_type)
    ds.InstanceNumber = 1
    ds.ContentTime = _fmt_time(series_time + 2)
    ds.AcquisitionDateTime = study.study_date + _fmt_time(series_time)
    ds.AcquisitionNumber = 1
    ds.InstanceCreationDate = study.study_date
    ds.ContentQualification = "PRODUCT"
    ds.ResonantNucleus = "1H"
    ds.KSpaceFiltering = "NONE"
    ds.MagneticFieldStrength = _ds_str(scanner.field, 3)
    ds.ApplicableSafetyStandardAgency = "IEC"
    ds.ImageComments = ""
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    ds.PixelPresentation = "MONOCHROME" if pix["SamplesPerPixel"] == 1 else "COLOR"
    ds.VolumetricProperties = "VOLUME" if ser.kind not in ("MIP", "MNIP") else "DISTORTED"
    ds.VolumeBasedCalculationTechnique = {"MIP": "MAX_IP", "MNIP": "MIN_IP"}.get(ser.kind, "NONE")
    ds.ComplexImageComponent = "PHASE" if ser.kind == "P" else "MAGNITUDE"
    ds.AcquisitionContrast = meta.contrast
    ds.PulseSequenceName = meta.pulse_name
    ds.EchoPulseSequence = meta.echo_pulse
    ds.MultipleSpinEcho = "NO"
    ds.MultiPlanarExcitation = "NO"
    ds.PhaseContrast = "NO"
    ds.TimeOfFlightContrast = "YES" if ser.sequence in ("tof", "tof_mip") else "NO"
    ds.Spoiling = "RF" if a.get("family") in ("gre", "vibe", "mprage", "tfe", "bravo", "flash3d", "tof", "swi") else "NONE"
    ds.SteadyStatePulseSequence = "FREE_PRECESSION" if a.get("family") in ("ciss", "trufi", "scout_bssfp") else "NONE"
    ds.EchoPlanarPulseSequence = "YES" if a.get("family") in ("dwi", "dsc", "bold", "asl", "fa", "fmap_epi") else "NO"
    ds.SaturationRecovery = "NO"
    ds.SpectrallySelectedSuppression = "FAT" if ser.fat_sat else "NONE"
    ds.OversamplingPhase = "NONE"
    ds.GeometryOfKSpaceTraversal = "RECTILINEAR"
    ds.SegmentedKSpaceTraversal = "SINGLE" if a.get("family") in ("dwi", "dsc", "bold", "haste") else "PARTIAL"
    ds.RectilinearPhaseEncodeReordering = "LINEAR"
    ds.NumberOfKSpaceTrajectories = 1
    ds.CoverageOfKSpace = "FULL"
    if a.get("mr_type"):
        ds.MRAcquisitionType = a["mr_type"]
    if ser.n_temporal:
        ds.NumberOfTemporalPositions = int(ser.n_temporal)
    if contrast_agent is not None:
        ds.ContrastBolusAgent = contrast_agent
    # private classic-style tokens (Siemens XA keeps them in (0021,xx) groups)
    if scanner.vendor == "Siemens" and meta.scanning_sequence:
        blk = ds.private_block(0x0021, "SIEMENS MR SDS 01", create=True)
        blk.add_new(0x5A, "CS", meta.scanning_sequence)
        blk.add_new(0x5B, "CS", meta.sequence_variant)
        if meta.scan_options:
            blk.add_new(0x5C, "CS", meta.scan_options)
    _private(ds, meta)
    # dimension organisation: stack / in-stack position (+ temporal / b)
    dim_uid = make_uid(uid_key, "dim")
    ds.DimensionOrganizationSequence = Sequence([_seq_item(DimensionOrganizationUID=dim_uid)])
    ds.DimensionIndexSequence = Sequence([
        _seq_item(DimensionOrganizationUID=dim_uid, DimensionIndexPointer=0x00209056, FunctionalGroupPointer=0x00209111,
                  DimensionDescriptionLabel="Stack ID"),
        _seq_item(DimensionOrganizationUID=dim_uid, DimensionIndexPointer=0x00209057, FunctionalGroupPointer=0x00209111,
                  DimensionDescriptionLabel="In-Stack Position Number"),
    ])
    # shared functional groups
    shared = Dataset()
    if ser.pixel_spacing is not None:
        shared.PixelMeasuresSequence = Sequence([_seq_item(
            PixelSpacing=[_ds_str(round(v, 6), 9) for v in ser.pixel_spacing],
            SliceThickness=_ds_str(ser.thickness or 1.0, 5),
            **({"SpacingBetweenSlices": _ds_str(ser.spacing, 6)} if ser.spacing else {}))])
    iops = {tuple(np.round(f.iop, 6)) for f in ser.frames if f.iop is not None}
    if len(iops) == 1:
        shared.PlaneOrientationSequence = Sequence([_seq_item(ImageOrientationPatient=[_ds_str(round(v, 8), 9) for v in ser.frames[0].iop])])
    timing = Dataset()
    if a.get("tr") is not None:
        timing.RepetitionTime = float(round(a["tr"], 3))
    if a.get("fa") is not None:
        timing.FlipAngle = float(round(a["fa"], 2))
    if a.get("etl") is not None:
        timing.EchoTrainLength = int(a["etl"])
    timing.RFEchoTrainLength = int(a.get("etl") or 1)
    timing.GradientEchoTrainLength = 0 if meta.echo_pulse == "SPIN" else 1
    shared.MRTimingAndRelatedParametersSequence = Sequence([timing])
    mod = Dataset()
    mod.InversionRecovery = "YES" if a.get("ti") else "NO"
    if a.get("ti"):
        mod.InversionTimes = [float(round(a["ti"], 1))]
    mod.FlowCompensation = "OTHER" if a.get("flow_comp") else "NONE"
    mod.T2Preparation = "NO"
    mod.SpectrallySelectedExcitation = "NONE"
    mod.SpatialPresaturation = "NONE"
    mod.PartialFourier = "YES" if a.get("partial_fourier") else "NO"
    mod.ParallelAcquisition = "NO"
    shared.MRModifierSequence = Sequence([mod])
    shared.MRReceiveCoilSequence = Sequence([_seq_item(ReceiveCoilName="Head_32", ReceiveCoilType="MULTICOIL")])
    shared.MRTransmitCoilSequence = Sequence([_seq_item(TransmitCoilName="Body", TransmitCoilType="BODY")])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per = []
    for i, (fr, arr) in enumerate(zip(ser.frames, stored)):
        f = Dataset()
        fc = _seq_item(StackID="1", InStackPositionNumber=int(fr.slice_index) + 1,
                       DimensionIndexValues=[1, int(fr.slice_index) + 1])
        if fr.temporal:
            fc.TemporalPositionIndex = int(fr.temporal)
        f.FrameContentSequence = Sequence([fc])
        if fr.ipp is not None:
            f.PlanePositionSequence = Sequence([_seq_item(ImagePositionPatient=[_ds_str(round(v, 5), 9) for v in fr.ipp])])
        if len(iops) != 1 and fr.iop is not None:
            f.PlaneOrientationSequence = Sequence([_seq_item(ImageOrientationPatient=[_ds_str(round(v, 8), 9) for v in fr.iop])])
        te = fr.echo_time if fr.echo_time is not None else a.get("te")
        if te is not None:
            f.MREchoSequence = Sequence([_seq_item(EffectiveEchoTime=float(round(te, 3)))])
        if fr.b_value is not None:
            dif = Dataset()
            dif.DiffusionBValue = float(fr.b_value)
            if fr.b_value == 0:
                dif.DiffusionDirectionality = "NONE"
            elif fr.b_dir is None:
                dif.DiffusionDirectionality = "ISOTROPIC"
            else:
                dif.DiffusionDirectionality = "DIRECTIONAL"
                dif.DiffusionGradientDirectionSequence = Sequence([_seq_item(DiffusionGradientOrientation=[float(x) for x in fr.b_dir])])
            f.MRDiffusionSequence = Sequence([dif])
        elif ser.sequence == "adc":
            f.MRDiffusionSequence = Sequence([_seq_item(DiffusionDirectionality="ISOTROPIC")])
        ft = list(meta.image_type[:4]) + [""] * max(0, 4 - len(meta.image_type))
        if fr.trace:
            ft = ["DERIVED", "PRIMARY", "DIFFUSION", "TRACEW"]
        f.MRImageFrameTypeSequence = Sequence([_seq_item(
            FrameType=ft[:4], PixelPresentation=ds.PixelPresentation, VolumetricProperties=ds.VolumetricProperties,
            VolumeBasedCalculationTechnique=ds.VolumeBasedCalculationTechnique, ComplexImageComponent=ds.ComplexImageComponent,
            AcquisitionContrast=ds.AcquisitionContrast)])
        if pix["SamplesPerPixel"] == 1:
            f.PixelValueTransformationSequence = Sequence([_seq_item(RescaleIntercept=_ds_str(intercept), RescaleSlope=_ds_str(slope, 8),
                                                                     RescaleType="US")])
            wc, ww = _window(arr, slope, intercept)
            f.FrameVOILUTSequence = Sequence([_seq_item(WindowCenter=wc, WindowWidth=ww)])
        per.append(f)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    ds.NumberOfFrames = len(stored)
    ds.Rows, ds.Columns = int(stored[0].shape[0]), int(stored[0].shape[1])
    for k, v in pix.items():
        setattr(ds, k, v)
    ds.PixelData = np.stack(stored).tobytes()
    path = os.path.join(out_dir, "IM00001.dcm")
    _save(ds, path, implicit=False)
    return [path]
