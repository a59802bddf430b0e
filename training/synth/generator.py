"""Study generation: protocol -> series recipes -> vendor metadata -> DICOM files + label rows."""
from __future__ import annotations

import os
import zlib

import numpy as np

from . import sequences as S
from . import sequences_epi as E
from . import sequences_other as O
from . import sequences_vascular as V
from .dicomio import StudyInfo, write_classic, write_enhanced
from .geometry import series_orientation
from .protocols import plan_study
from .subject import Subject
from .uids import make_uid
from .vendors import pick_scanner, series_meta

LABEL_COLUMNS = ["dir", "series_uid", "sequence", "orientation", "vendor", "study_uid", "series_number", "series_description",
                 "subtype", "protocol", "field_strength", "manufacturer", "model", "enhanced", "transfer_syntax", "n_files",
                 "contrast_agent"]

AGENTS = ["Gadovist", "Dotarem", "MultiHance", "Clariscan", "Magnevist", "ProHance", "11 ml Omniscan", "15 ml Gadovist", "Gd", "YES",
          "GADOBUTROL 1.0 MMOL/ML", "Gadoterate"]


def run_step(ctx: S.Ctx, step: str):
    """Render one protocol step into one or more :class:`Series`."""
    rng = ctx.rng
    if step == "scout":
        return O.make_scout(ctx)
    if step == "t1_pre":
        return S.make_t1(ctx, False)
    if step == "t1_post":
        return S.make_t1(ctx, True)
    if step in ("t1_post_planes", "t1_iac_post_planes"):
        # post-contrast T1 in one or two further planes (axial, coronal, sagittal; IAC: axial, coronal)
        iac = step.startswith("t1_iac")
        used = ctx.post_planes.get("t1_iac" if iac else "t1", [])
        free = [p for p in (("axial", "coronal") if iac else ("axial", "coronal", "sagittal")) if p not in used]
        rng.shuffle(free)
        return [s for p in free[:1 + int(rng.random() < 0.3)] for s in S.make_t1(ctx, True, plane=p, iac=iac)]
    if step == "t1_iac_pre":
        return S.make_t1_iac(ctx, False)
    if step == "t1_iac_post":
        return S.make_t1_iac(ctx, True)
    if step == "t1_3d_pre":
        return S.make_t1_3d(ctx, False)
    if step == "t1_3d_post":
        return S.make_t1_3d(ctx, True)
    if step == "vibe_pre":
        return S.make_vibe(ctx, False)
    if step == "vibe_post":
        return S.make_vibe(ctx, True)
    if step == "vibe_vfa":
        # The T1 map of quantitative DCE: two to four pre-contrast series at different flip angles.
        flips = sorted(rng.choice([2.0, 5.0, 10.0, 15.0, 20.0], size=int(rng.integers(2, 5)), replace=False))
        ctx.t1_mapping = {}
        return [s for fa in flips for s in S.make_vibe(ctx, False, flip=float(fa))]
    if step == "t2":
        return S.make_t2(ctx)
    if step == "t2_haste":
        return S.make_haste(ctx)
    if step == "t2_3d":
        return S.make_t2_3d(ctx)
    if step == "ciss":
        return S.make_ciss(ctx)
    if step == "flair":
        return S.make_flair(ctx)
    if step == "flair_3d":
        return S.make_flair_3d(ctx)
    if step == "dwi":
        return E.make_dwi(ctx, with_adc=rng.random() < 0.92)
    if step == "perfusion":
        return E.make_perfusion(ctx)
    if step == "swi":
        which = ["swi_mag", "swi_phase", "swi", "swi_mip"]
        if ctx.vendor == "GE" and rng.random() < 0.75:
            # SWAN is magnitude-based: a separate processed SWI series is often absent (vendor notes)
            which.remove("swi")
        if rng.random() < 0.35:  # sites export only some of them
            which = [w for w in which if rng.random() < 0.75] or (["swi"] if "swi" in which else ["swi_mag"])
        return V.make_swi_family(ctx, tuple(which))
    if step == "tof":
        return V.make_tof_family(ctx, with_mip=rng.random() < 0.93)
    if step == "other_bold":
        return E.make_bold(ctx)
    if step == "other_asl":
        return E.make_asl(ctx)
    if step == "other_fieldmap":
        out = E.make_fieldmap(ctx)
        return out
    if step == "other_fa":
        return E.make_fa(ctx)
    if step == "other_nonhead":
        return O.make_nonhead(ctx)
    if step == "other_screenshot":
        return O.make_screenshot(ctx)
    raise ValueError(step)


def _study_info(rng, seed, index, protocol):
    sex = str(rng.choice(["M", "F"]))
    age = int(rng.integers(1, 92)) if protocol != "pediatric" else int(rng.integers(1, 16))
    year = 2012 + int(rng.integers(0, 13))
    date = f"{year}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"
    t = float(rng.uniform(7, 19) * 3600)
    bp = str(rng.choice(["HEAD", "BRAIN", "HEAD", "", "NEURO", "IAC"])) if rng.random() < 0.65 else None
    desc = {"routine": "MRI BRAIN", "ms": "MR HEAD MS PROTOCOL", "tumour": "MRI BRAIN W WO CONTRAST", "stroke": "MR STROKE",
            "iac": "MRI IAC W WO", "pediatric": "MR BRAIN PEDS", "angio": "MRA HEAD", "dce": "MR BRAIN DCE", "research": "RESEARCH^NEURO",
            "epilepsy": "MR EPILEPSY", "custom": "MRI BRAIN", "nonbrain": str(rng.choice(["MR SPINE", "MR KNEE", "MR ABDOMEN"]))}[protocol]
    if rng.random() < 0.3:
        desc = str(rng.choice(["", "Kopf", "Neuro^Head", "BRAIN"]))
    return StudyInfo(study_uid=make_uid(seed, index, "study"), patient_id=f"SYN{seed % 1000:03d}{index:06d}",
                     patient_name=f"SYNTH^{index:06d}", birth_date=f"{year - age}0101", sex=sex, age=f"{age:03d}Y",
                     weight=float(rng.uniform(10, 40) if age < 12 else rng.uniform(45, 110)), study_date=date,
                     study_time=f"{int(t // 3600):02d}{int(t % 3600 // 60):02d}{int(t % 60):02d}", accession=f"A{seed % 97:02d}{index:07d}",
                     study_id=str(int(rng.integers(1, 99999))), study_description=desc, body_part=bp), t


def generate_study(out_root: str, seed: int, index: int, max_images: int = 16, *, steps=None, vendor=None,
                   field=None, enhanced=None):
    """Write one study under ``out_root``; returns its label rows (dicts).

    ``steps``/``vendor``/``field``/``enhanced`` override the random protocol,
    scanner and export format (used by the tests to cover every class).
    """
    # Streams derived from (seed, study, purpose, number), so that a draw added to one part of
    # the generator shifts nothing else: the study's own draws here, the subject's, each
    # protocol step's and each series' (tests/test_corpus_fingerprint.py pins the result).
    rng = np.random.default_rng([seed, index])
    protocol, planned = plan_study(rng)
    if steps is not None:
        protocol, planned = "custom", list(steps)
    steps = planned
    v = str(rng.choice(["Siemens", "GE", "Philips", "Canon"], p=[0.36, 0.26, 0.26, 0.12]))
    vendor = vendor or v
    f = 3.0 if rng.random() < 0.55 else 1.5
    field = field or f
    scanner = pick_scanner(rng, vendor, field)
    if enhanced is not None:
        if enhanced and scanner.enhanced_rate == 0:
            scanner = next(pick_scanner(np.random.default_rng([seed, index, k]), vendor) for k in range(50)
                           if pick_scanner(np.random.default_rng([seed, index, k]), vendor).enhanced_rate > 0)
        scanner.enhanced_rate = 1.0 if enhanced else 0.0
        scanner.field = field
    lesion = None
    if protocol in ("ms",) or rng.random() < 0.15:
        lesion = "ms"
    if protocol == "tumour" and rng.random() < 0.8:
        lesion = "tumour"
    if protocol == "stroke" and rng.random() < 0.7:
        lesion = "infarct"
    if lesion is None and rng.random() < 0.05:
        lesion = "haem"
    subject = Subject(np.random.default_rng([seed, index, 0, 0]), field, pediatric=protocol == "pediatric", lesion=lesion)
    ctx = S.Ctx(subject=subject, vendor=vendor, field=field, rng=rng, max_images=max_images)
    study, t0 = _study_info(rng, seed, index, protocol)
    enhanced_study = rng.random() < scanner.enhanced_rate
    ctx.mosaic_ok = vendor == "Siemens" and not enhanced_study
    study_dir = os.path.join(out_root, f"study_{index:05d}")
    os.makedirs(study_dir, exist_ok=True)
    rows = []
    series_no = 0
    t = t0
    agent = str(rng.choice(AGENTS))
    occurrences = {}
    for step in steps:
        if step == "inject":
            ctx.post = True
            continue
        # A step's stream is named by the step and its occurrence in the protocol, not its
        # position: a step added to a protocol changes no other step's series.
        occurrences[step] = occurrences.get(step, 0) + 1
        step_key = [zlib.crc32(step.encode()), occurrences[step]]
        ctx.rng = np.random.default_rng([seed, index, 1, *step_key])
        for position, ser in enumerate(run_step(ctx, step)):
            series_no += 1
            srng = np.random.default_rng([seed, index, 2, *step_key, position])
            iops = [f.iop for f in ser.frames if f.iop is not None]
            ser.orientation = series_orientation(iops) if iops else "oblique"
            number = series_no if vendor != "Philips" else series_no * 100 + 1
            key = (seed, index, series_no)
            series_uid = make_uid(*key, "series")
            for_uid = make_uid(seed, index, "for")
            enhanced = bool(enhanced_study and ser.subtype != "screenshot" and srng.random() < 0.95)
            implicit = (not enhanced) and srng.random() < 0.08
            meta = series_meta(srng, ser, scanner, enhanced)
            give_agent = None
            if ser.post_contrast and ser.sequence != "perfusion" and srng.random() < 0.45:
                give_agent = agent
            elif ctx.post and srng.random() < 0.08:
                give_agent = agent  # copied into later series
            sdir = os.path.join(study_dir, f"series_{series_no:03d}")
            os.makedirs(sdir, exist_ok=True)
            if enhanced:
                paths = write_enhanced(sdir, study, scanner, ser, meta, series_uid, for_uid, number, key, srng, t, give_agent)
            else:
                paths = write_classic(sdir, study, scanner, ser, meta, series_uid, for_uid, number, key, srng, t, implicit, give_agent)
            t += float(srng.uniform(60, 400))
            rows.append(dict(dir=os.path.relpath(sdir, out_root), series_uid=series_uid, sequence=ser.sequence,
                             orientation=ser.orientation, vendor=vendor, study_uid=study.study_uid, series_number=number,
                             series_description=meta.description, subtype=ser.subtype, protocol=protocol, field_strength=field,
                             manufacturer=scanner.manufacturer, model=scanner.model, enhanced=int(enhanced),
                             transfer_syntax="implicit" if implicit else "explicit", n_files=len(paths),
                             contrast_agent=give_agent or ""))
    return rows
