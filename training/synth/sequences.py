"""Sequence recipes: protocol parameters -> contrast -> geometry -> pixels.

Each public ``make_*`` function draws realistic acquisition parameters for
its class (per vendor and field strength; mr-physics.md / vendor-metadata.md),
computes the per-compartment signal with the matching signal equation,
plans the slices and renders them through :mod:`training.synth.imaging`.
Some return several series that belong together (DWI + ADC, the SWI family,
TOF + MIPs, 3D scout + MPRs).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage as ndi

from . import physics
from .anatomy import CH
from .geometry import SliceStack, even_subset, plan_stack
from .imaging import AcqOpts, acquire, reconstruct, sample_volumes, slice_indices
from .series import Frame, Series
from .subject import BRAIN_CENTRE_ANAT, Subject, mni_to_anat

IAC_CENTRE = mni_to_anat((0.0, -22.0, -35.0))
CIRCLE_OF_WILLIS = mni_to_anat((0.0, -5.0, -10.0))


@dataclass
class Ctx:
    """Everything a recipe needs about the study it is part of."""

    subject: Subject
    vendor: str
    field: float
    rng: np.random.Generator
    post: bool = False          # contrast has been injected earlier in the study
    max_images: int = 20        # cap on images written per series (subsampling)
    mosaic_ok: bool = True      # Siemens classic exports may tile EPI slices into mosaics (not XA)
    # The settings of this study's pre-contrast T1 acquisitions by kind (2D, IAC, 3D, VIBE): a
    # post-contrast series often runs the same protocol again, so that the two can be compared
    # slice by slice ("_post = _pre headers + contrast evidence", vendor-metadata.md).
    pre_contrast: dict = field(default_factory=dict)
    # The settings shared by the series of a variable-flip-angle T1-mapping set (DESPOT1 needs the
    # same TR, TE and slab in each; only the flip angle changes). Cleared before each set.
    t1_mapping: dict = field(default_factory=dict)
    # The planes of this study's post-contrast 2D T1 by kind ("t1", "t1_iac") and the settings of the
    # last one: post-contrast T1 are often run in a second or third plane with the same protocol.
    post_planes: dict = field(default_factory=dict)
    post_settings: dict = field(default_factory=dict)

    def u(self, a, b):
        return float(self.rng.uniform(a, b))

    def choice(self, items, p=None):
        i = self.rng.choice(len(items), p=p)
        return items[i]

    @property
    def hi(self):
        return self.field > 2.0

    def same_as_pre(self, kind: str, post: bool, p: float):
        """The settings of the pre-contrast ``kind`` acquisition when a post-contrast series runs it
        again (probability ``p``), else None."""
        if not post or kind not in self.pre_contrast:
            return None
        return self.pre_contrast[kind] if self.rng.random() < p else None


# ----------------------------------------------------------------------------- helpers

def choose_plane(ctx: Ctx, weights: dict) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], float)
    return ctx.choice(names, p / p.sum())


def plan(ctx: Ctx, plane: str, *, fov, matrix, n_slices, spacing, thickness, keep_n=None,
         centre=BRAIN_CENTRE_ANAT, rect=1.0, jitter=6.0, small_tilt=10.0) -> SliceStack:
    """Plan a stack; ``plane`` may be 'oblique' (tilted 38-55 degrees off every axis)."""
    rng = ctx.rng
    sub = ctx.subject
    if plane == "oblique":
        base = ctx.choice(["axial", "coronal", "sagittal"], [0.5, 0.3, 0.2])
        tilt = ctx.u(38, 55) * ctx.choice([-1, 1])
    else:
        base = plane
        tilt = rng.normal(0, small_tilt / 2.5)
        tilt = float(np.clip(tilt, -small_tilt, small_tilt))
    c = np.asarray(centre, float) + rng.normal(0, jitter, 3)
    keep = None
    if keep_n is not None and keep_n < n_slices:
        keep = even_subset(n_slices, keep_n)
    st = plan_stack(rng, base, sub.pose_R, sub.pose_t, anat_centre=c, fov=fov, matrix=matrix,
                    n_slices=n_slices, spacing=spacing, thickness=thickness, oblique_deg=tilt,
                    inplane_deg=float(rng.normal(0, 2)), keep=keep, rect=rect)
    if plane == "oblique":
        # make sure the tilt really is oblique under the labelling rule (normal < 0.8 on every axis)
        if np.abs(st.normal).max() >= 0.78:
            from .geometry import _rot_about
            for _ in range(10):  # tilt about both in-plane axes until clearly oblique
                st.row = _rot_about(st.row, st.col, 9.0)
                st.col = _rot_about(st.col, st.row, 7.0)
                if np.abs(st.normal).max() < 0.78:
                    break
    return st


def opts_for(ctx: Ctx, stack: SliceStack, *, res=1.0, snr=30.0, ref=0.3, pe_axis=None, **kw) -> AcqOpts:
    """Acquired grid: at most the recon matrix, not finer than ``res`` mm (phantom is 1.5 mm)."""
    acq_c = int(min(stack.cols, max(32, round(stack.fov_c / max(res, 0.9)))))
    acq_r = int(min(stack.rows, max(32, round(stack.fov_r / max(res, 0.9)))))
    if pe_axis is None:
        pe_axis = int(ctx.rng.random() < 0.3)
    bias = kw.pop("bias", ctx.u(0.1, 0.35))
    snr = snr * (1.8 if ctx.hi else 1.0) * ctx.u(0.7, 1.3)
    return AcqOpts(acq_r=acq_r, acq_c=acq_c, snr=snr, ref_level=max(float(ref), 1e-4), pe_axis=pe_axis,
                   field_t=ctx.field, bias=bias, filter=ctx.choice(["none", "hamming", "fermi"], [0.5, 0.2, 0.3]),
                   ghost=kw.pop("ghost", ctx.u(0, 0.12) if ctx.rng.random() < 0.25 else 0.0), **kw)


def frames_from(stack: SliceStack, images, **kw) -> list:
    return [Frame(pixels=im, ipp=[float(v) for v in stack.ipp(k)], iop=stack.iop, instance=k + 1,
                  slice_index=k, **kw) for k, im in zip(stack.keep, images)]


def make_series(seq, subtype, stack, frames, acq, **kw) -> Series:
    return Series(sequence=seq, subtype=subtype, frames=frames, acq=acq,
                  pixel_spacing=[float(v) for v in stack.pixel_spacing], thickness=float(stack.thickness),
                  spacing=float(stack.spacing), rows=stack.rows, cols=stack.cols, **kw)


def recon_matrix(ctx: Ctx, choices=(256, 256, 320, 384, 512), p=(0.45, 0.15, 0.15, 0.15, 0.10)):
    return int(ctx.choice(list(choices), list(p)))


def brain_2d(ctx: Ctx, plane, thick_rng=(4.0, 6.0), gap_rng=(0.1, 0.3), fov_rng=(210, 260), rect=None,
             matrix=None, centre=BRAIN_CENTRE_ANAT):
    # FOV 210-260 mm: at a 256 recon matrix that is 0.82-1.02 mm pixels (dev: Siemens t1_fl2d_sag 260 mm, 1.016 mm),
    # the same spacing as a scout, so pixel spacing alone must not tell a 2D T1 from a localizer
    th = round(ctx.u(*thick_rng) * 2) / 2  # protocols use round slice thicknesses
    sp = round(th * (1 + ctx.u(*gap_rng)), 1)
    cover = {"axial": 150, "coronal": 170, "sagittal": 140, "oblique": 150}[plane] * ctx.u(0.8, 1.05)
    n = int(np.clip(round(cover / sp), 12, 40))
    if rect is None:
        rect = 1.0 if plane != "axial" and ctx.rng.random() < 0.5 else ctx.choice([1.0, 0.875, 0.8125, 0.75])
        if plane == "sagittal":
            rect = 1.0
    return plan(ctx, plane, fov=round(ctx.u(*fov_rng)), matrix=matrix or recon_matrix(ctx), n_slices=n,
                spacing=sp, thickness=th, keep_n=ctx.max_images, centre=centre, rect=rect)


def sig(ctx, s):
    return ctx.subject.signal_volume(s)


def fat_suppress(ctx: Ctx, s: np.ndarray, eff=None) -> np.ndarray:
    s = s.copy()
    f = eff if eff is not None else ctx.u(0.05, 0.25)
    s[CH["fat"]] *= f
    s[CH["marrow"]] *= min(1.0, f * 2.5)
    return s


def wm_ref(s):
    return float(max(s[CH["wm"]], s[CH["gm"]], 0.02))


# ----------------------------------------------------------------------------- 2D T1 and IAC

def make_t1(ctx: Ctx, post: bool, plane=None, iac=False) -> list:
    """A 2D T1 (or IAC T1); ``plane`` set on a post-contrast one makes it a further plane of the
    post-contrast T1, often with the protocol of the one before."""
    rng = ctx.rng
    t = ctx.subject.tissue_params(post)
    kind = "t1_iac" if iac else "t1"
    if plane is not None and post and kind in ctx.post_settings and rng.random() < 0.6:
        same = dict(ctx.post_settings[kind], stack=None)
    else:
        # IAC post-contrast T1 are often fat-saturated where the pre is not, so less often a rerun [guess]
        same = ctx.same_as_pre(kind, post, 0.3 if iac else 0.5)
    if same:
        variant, tr, te, ti, etl, fa, fs, st = (same[k] for k in ("variant", "tr", "te", "ti", "etl", "fa", "fs", "stack"))
        plane = plane or same.get("plane")
    else:
        fs = post and rng.random() < (0.6 if iac else 0.25)
        p_gre = 0.3 if ctx.vendor == "Siemens" else 0.12  # t1_fl2d is a common Siemens 2D T1
        variant = ctx.choice(["se", "tse", "gre", "t1flair"], [0.35, 0.3, p_gre, 0.35 - p_gre] if not iac else [0.5, 0.45, 0.05, 0.0])
        etl = 1
        ti = None
        st = None
        if variant in ("se", "tse"):
            tr = ctx.u(450, 650) if not ctx.hi else ctx.u(500, 800)
            te = ctx.u(8, 15)
            etl = 1 if variant == "se" else int(rng.integers(2, 6))
            fa = 90.0 if ctx.vendor != "GE" else float(ctx.choice([90.0, 70.0, 160.0]))
        elif variant == "gre":
            # 2D FLASH/FSPGR T1: TR 150-400, FA 60-90 (Siemens t1_fl2d 250-300/70-80, dev 300/2.46/80 at 3 T).
            # TE is usually a fat-water in-phase echo (3 T: 2.46/4.92 ms, 1.5 T: 4.76 ms) or the shortest
            # (opposed-phase 2.38 ms at 1.5 T); sometimes just "minimum".
            tr, fa = ctx.u(150, 400), ctx.u(60, 90)
            te_choices = [2.46, 2.46, 4.92] if ctx.hi else [4.76, 4.76, 2.38]
            te = float(ctx.choice(te_choices)) if rng.random() < 0.7 else ctx.u(2.3, 5.0)
        else:
            tr = ctx.u(1800, 2500)
            ti = ctx.u(700, 860) if not ctx.hi else ctx.u(860, 1000)
            te, etl, fa = ctx.u(8, 20), int(rng.integers(6, 11)), 90.0
    if variant in ("se", "tse"):
        s = physics.spin_echo(t, tr, te)
        s[CH["wm"]] *= 0.95  # multi-slice MT
    elif variant == "gre":
        s = physics.spoiled_gre(t, tr, te, fa)
        # inflow: entry-slice vessels bright
        s[CH["artery"]] *= 2.0
    else:
        s = physics.inversion_recovery(t, tr, te, ti)
    s[CH["artery"]] *= 0.15 if variant != "gre" else 1.0  # flow void in SE
    if fs:
        s = fat_suppress(ctx, s)
    if iac:
        if st is None:
            plane = plane or choose_plane(ctx, {"axial": 0.6, "coronal": 0.4})
            th = round(ctx.u(2.0, 3.0), 1)
            sp = round(th + ctx.u(0, 0.5), 2)
            n = int(rng.integers(12, 31))
            st = plan(ctx, plane, fov=round(ctx.u(140, 200)), matrix=ctx.choice([256, 320, 384, 512], [0.3, 0.3, 0.25, 0.15]),
                      n_slices=n, spacing=sp, thickness=th, keep_n=ctx.max_images, centre=IAC_CENTRE, jitter=3.0,
                      rect=ctx.choice([1.0, 0.875, 0.75]))
        res = 0.9
    else:
        if st is None:
            plane = plane or choose_plane(ctx, {"axial": 0.5, "sagittal": 0.28, "coronal": 0.17, "oblique": 0.05})
            st = brain_2d(ctx, plane)
        res = 1.0
    settings = dict(variant=variant, tr=tr, te=te, ti=ti, etl=etl, fa=fa, fs=fs, stack=st, plane=plane)
    if not post:
        ctx.pre_contrast[kind] = settings
    else:
        ctx.post_planes.setdefault(kind, []).append(plane)
        ctx.post_settings[kind] = settings
    o = opts_for(ctx, st, res=res, snr=28 if not iac else 18, ref=wm_ref(s))
    imgs = acquire(ctx.subject, st, [sig(ctx, s)], o, rng)[0]
    seq = ("t1_iac_post" if post else "t1_iac_pre") if iac else ("t1_post" if post else "t1_pre")
    acq = dict(tr=tr, te=te, ti=ti, fa=fa, etl=etl, mr_type="2D", family=variant, fat_sat=fs,
               pe_axis=o.pe_axis, pixel_bw=ctx.u(130, 300))
    return [make_series(seq, variant, st, frames_from(st, imgs), acq, post_contrast=post, fat_sat=fs,
                        acq_matrix=(o.acq_c, o.acq_r))]


def make_t1_iac(ctx: Ctx, post: bool) -> list:
    return make_t1(ctx, post, iac=True)


# ----------------------------------------------------------------------------- 3D T1 and VIBE

def _stack_3d(ctx: Ctx, plane, res_mm, n_part, fov, matrix, centre=BRAIN_CENTRE_ANAT, keep_n=None, rect=1.0):
    return plan(ctx, plane, fov=fov, matrix=matrix, n_slices=n_part, spacing=res_mm, thickness=res_mm,
                keep_n=keep_n or ctx.max_images, centre=centre, rect=rect, jitter=4.0, small_tilt=8.0)


def make_t1_3d(ctx: Ctx, post: bool, plane=None) -> list:
    rng = ctx.rng
    t = ctx.subject.tissue_params(post)
    v = ctx.vendor
    same = ctx.same_as_pre("t1_3d", post, 0.5)  # [guess]
    if same:
        kind, tr, te, fa, ti, etl, mp, st = (same[k] for k in ("kind", "tr", "te", "fa", "ti", "etl", "mprage", "stack"))
    else:
        kind = "mprage"
        if post and rng.random() < 0.2:
            kind = "flash3d"
        ti = None
        mp = None  # the magnetisation-prepared signal's arguments (physics.mprage)
        if kind == "flash3d":
            tr, te, fa = ctx.u(8, 25), ctx.u(2.5, 5), ctx.u(15, 25)
            etl = 1
        elif v == "GE":
            tr, te, fa = ctx.u(6, 9), ctx.u(2.5, 3.5), ctx.u(8, 13)
            ti = ctx.choice([400.0, 450.0, 500.0, 600.0])
            mp = (2 * ti + 900, ti + 120 * tr / 2, fa, tr, 120, te)
            etl = 1
            kind = "bravo"
        elif v == "Philips":
            tr, te, fa = ctx.u(6.5, 8.3), ctx.u(2.9, 4.6), ctx.u(8, 9)
            ti = 900.0 if ctx.rng.random() < 0.7 else ctx.u(800, 1100)
            mp = (ctx.u(2200, 3000), ti, fa, tr, 180, te)
            etl = int(ctx.choice([180, 200, 240, 256]))
            kind = "tfe"
        else:
            if ctx.hi:
                tr, ti, te, fa = ctx.u(1800, 2300), ctx.u(850, 1100), ctx.u(2.3, 4.1), ctx.u(8, 9)
            else:
                tr, ti, te, fa = ctx.u(1900, 2400), ctx.u(1000, 1100), ctx.u(3.0, 4.2), ctx.u(8, 15)
            mp = (tr, ti, fa, ctx.u(6.5, 8.5), 176, te)
            etl = 1
        st = None
    s = physics.spoiled_gre(t, tr, te, fa) if mp is None else physics.mprage(t, *mp)
    if st is None:
        plane = plane or (choose_plane(ctx, {"sagittal": 0.7, "axial": 0.2, "coronal": 0.08, "oblique": 0.02}) if not post
                          else choose_plane(ctx, {"sagittal": 0.4, "axial": 0.4, "coronal": 0.17, "oblique": 0.03}))
        res = round(ctx.u(0.9, 1.2), 2)
        n_part = int(ctx.choice([160, 176, 192, 208])) if plane == "sagittal" else int(np.clip(round(ctx.u(150, 200) / res), 128, 208))
        st = _stack_3d(ctx, plane, res, n_part, fov=round(ctx.u(230, 256)), matrix=ctx.choice([256, 256, 320, 512], [0.5, 0.2, 0.2, 0.1]),
                       rect=ctx.choice([1.0, 0.9375, 0.875]))
    n_part = st.n_slices
    if not post:
        ctx.pre_contrast["t1_3d"] = dict(kind=kind, tr=tr, te=te, fa=fa, ti=ti, etl=etl, mprage=mp, stack=st)
    o = opts_for(ctx, st, res=1.0, snr=30, ref=wm_ref(s), pe_axis=int(rng.random() < 0.5))
    imgs = acquire(ctx.subject, st, [sig(ctx, s)], o, rng)[0]
    seq = "t1_3d_post" if post else "t1_3d_pre"
    acq = dict(tr=tr, te=te, ti=ti, fa=fa, etl=etl, mr_type="3D", family=kind, fat_sat=False, pe_axis=o.pe_axis,
               pixel_bw=ctx.u(150, 250), n_partitions=n_part)
    return [make_series(seq, kind, st, frames_from(st, imgs), acq, post_contrast=post, acq_matrix=(o.acq_c, o.acq_r))]


def make_vibe(ctx: Ctx, post: bool, flip: float | None = None) -> list:
    """3D spoiled GRE (VIBE/LAVA/THRIVE); ``flip`` makes it one series of a variable-flip-angle set."""
    rng = ctx.rng
    t = ctx.subject.tissue_params(post)
    same = ctx.same_as_pre("vibe", post, 0.6)  # a DCE run repeats the pre-contrast volume [guess]
    if same:
        tr, te, fa, fs, st = (same[k] for k in ("tr", "te", "fa", "fs", "stack"))
        vfa = False
    elif flip is not None and ctx.t1_mapping:  # a further flip angle of the set
        tr, te, fs, st = (ctx.t1_mapping[k] for k in ("tr", "te", "fs", "stack"))
        fa, vfa = flip, True
    else:
        tr, te, fa = ctx.u(3.5, 6.5), ctx.u(1.2, 2.8), ctx.u(9, 15)
        vfa = flip is not None or (rng.random() < 0.15 and not post)
        if vfa:
            fa = flip if flip is not None else float(ctx.choice([2.0, 5.0, 10.0, 15.0]))  # variable-flip T1 mapping (pre-DCE)
        fs = rng.random() < 0.85
        st = None
    s = physics.spoiled_gre(t, tr, te, fa)
    s[CH["artery"]] *= 1.5
    if fs:
        s = fat_suppress(ctx, s)
    if st is None:
        plane = choose_plane(ctx, {"axial": 0.8, "coronal": 0.1, "sagittal": 0.07, "oblique": 0.03})
        th = round(ctx.u(1.0, 3.0), 1) if not vfa else float(ctx.choice([2.0, 3.0, 4.0, 5.0]))
        n_part = int(np.clip(round(ctx.u(110, 190) / th), 24, 176))
        st = plan(ctx, plane, fov=round(ctx.u(220, 260)), matrix=ctx.choice([256, 320, 384]), n_slices=n_part,
                  spacing=th, thickness=th, keep_n=ctx.max_images, rect=ctx.choice([1.0, 0.875, 0.75]), jitter=8.0)
    n_part = st.n_slices
    if not post and not vfa:  # the variable-flip T1-mapping series are not what the dynamic repeats
        ctx.pre_contrast["vibe"] = dict(tr=tr, te=te, fa=fa, fs=fs, stack=st)
    if flip is not None and not ctx.t1_mapping:
        ctx.t1_mapping = dict(tr=tr, te=te, fs=fs, stack=st)
    o = opts_for(ctx, st, res=1.1, snr=22, ref=wm_ref(s), pe_axis=int(rng.random() < 0.5), partial_fourier=ctx.choice([1.0, 0.875, 0.75]))
    imgs = acquire(ctx.subject, st, [sig(ctx, s)], o, rng)[0]
    n_dyn = int(rng.integers(1, 2)) if rng.random() < 0.8 else int(rng.integers(5, 40))
    acq = dict(tr=tr, te=te, ti=None, fa=fa, etl=1, mr_type="3D", family="vibe", fat_sat=fs, pe_axis=o.pe_axis,
               pixel_bw=ctx.u(350, 700), n_partitions=n_part, dynamics=n_dyn)
    seq = "vibe_post" if post else "vibe_pre"
    return [make_series(seq, "vibe", st, frames_from(st, imgs), acq, post_contrast=post, fat_sat=fs,
                        acq_matrix=(o.acq_c, o.acq_r), n_temporal=n_dyn if n_dyn > 1 else None)]


# ----------------------------------------------------------------------------- T2 family

def make_t2(ctx: Ctx) -> list:
    rng = ctx.rng
    t = ctx.subject.tissue_params(ctx.post)
    tr, te, etl = (ctx.u(3000, 6500), ctx.u(80, 120), int(rng.integers(8, 26)))
    s = physics.spin_echo(t, tr, te)
    s[CH["wm"]] *= 0.92
    s[CH["fat"]] *= 1.6  # J-coupling: fat bright on TSE
    s[CH["artery"]] *= 0.1
    s[CH["vein"]] *= 0.3
    fs = rng.random() < 0.15
    if fs:
        s = fat_suppress(ctx, s)
    plane = choose_plane(ctx, {"axial": 0.62, "coronal": 0.22, "sagittal": 0.12, "oblique": 0.04})
    st = brain_2d(ctx, plane)
    o = opts_for(ctx, st, res=1.0, snr=40, ref=wm_ref(s), pe_decay=ctx.u(0.0, 0.3))
    imgs = acquire(ctx.subject, st, [sig(ctx, s)], o, rng)[0]
    acq = dict(tr=tr, te=te, ti=None, fa=float(ctx.choice([90.0, 120.0, 150.0, 160.0])), etl=etl, mr_type="2D",
               family="tse", fat_sat=fs, pe_axis=o.pe_axis, pixel_bw=ctx.u(150, 300))
    if ctx.vendor == "Siemens":
        acq["fa"] = float(ctx.choice([120.0, 150.0, 180.0]))
    return [make_series("t2", "tse", st, frames_from(st, imgs), acq, fat_sat=fs, post_contrast=ctx.post,
                        acq_matrix=(o.acq_c, o.acq_r))]


def make_haste(ctx: Ctx) -> list:
    rng = ctx.rng
    t = ctx.subject.tissue_params(ctx.post)
    te = ctx.u(80, 125)
    etl = int(rng.integers(80, 257))
    t = replace(t, t2=t.t2 * 1.3)  # low refocusing angles lengthen apparent T2
    s = physics.spin_echo(t, 1e5, te)
    s[CH["artery"]] *= 0.05
    s[CH["vein"]] *= 0.2
    plane = choose_plane(ctx, {"axial": 0.45, "coronal": 0.25, "sagittal": 0.25, "oblique": 0.05})
    st = brain_2d(ctx, plane, thick_rng=(4.0, 6.0), matrix=ctx.choice([256, 256, 320, 384]),
                  rect=ctx.choice([0.75, 0.8125, 0.875, 1.0]), fov_rng=(220, 280))
    # blur: the brain/muscle part decays along PE, fluid stays sharp: two renders combined
    fluid = np.zeros_like(s)
    for c in ("csf", "vitreous"):
        fluid[CH[c]] = s[CH[c]]
    tissue = s - fluid
    tissue[-1] = s[-1]
    fluid[-1] = 0
    o = opts_for(ctx, st, res=1.3, snr=22, ref=wm_ref(s), partial_fourier=ctx.u(0.55, 0.65), pe_decay=0.0, ghost=0.0)
    pe_blur = ctx.u(1.2, 2.5)
    sub = ctx.subject
    n_r, n_c = o.acq_r, o.acq_c
    idx = slice_indices(sub, st, n_r, n_c)
    a, b = sample_volumes(sub, [sig(ctx, tissue), sig(ctx, fluid)], idx)
    imgs = []
    o_t = AcqOpts(**{**o.__dict__, "pe_decay": pe_blur})
    o_f = AcqOpts(**{**o.__dict__, "pe_decay": 0.15, "snr": 1e6})
    from .imaging import bias_field
    bias = bias_field(rng, n_r, n_c, o.bias)
    for k in range(a.shape[0]):
        imgs.append(np.abs(reconstruct(a[k], (st.rows, st.cols), o_t, rng, bias) +
                           reconstruct(b[k], (st.rows, st.cols), AcqOpts(**{**o_f.__dict__, "magnitude": False}), rng, bias).real))
    acq = dict(tr=float(ctx.choice([1e4, ctx.u(1000, 2000), ctx.u(1200, 1800)])), te=te, ti=None, fa=float(ctx.choice([90.0, 150.0, 160.0])),
               etl=etl, mr_type="2D", family="haste", fat_sat=False, pe_axis=o.pe_axis, pixel_bw=ctx.u(400, 800),
               partial_fourier=True)
    return [make_series("t2_haste", "haste", st, frames_from(st, imgs), acq, acq_matrix=(o.acq_c, o.acq_r))]


def make_t2_3d(ctx: Ctx) -> list:
    rng = ctx.rng
    t = ctx.subject.tissue_params(ctx.post)
    tr, te = ctx.u(2500, 3200), ctx.u(220, 410)
    s = physics.variable_flip_tse(t, tr, te)
    s[CH["artery"]] *= 0.05
    s[CH["vein"]] *= 0.1
    s[CH["fat"]] *= 1.4
    plane = choose_plane(ctx, {"sagittal": 0.72, "axial": 0.2, "coronal": 0.06, "oblique": 0.02})
    res = round(ctx.u(0.8, 1.0), 2)
    st = _stack_3d(ctx, plane, res, int(ctx.choice([160, 176, 192])), fov=round(ctx.u(230, 256)),
                   matrix=ctx.choice([256, 320, 384, 512], [0.4, 0.3, 0.15, 0.15]))
    o = opts_for(ctx, st, res=1.0, snr=30, ref=wm_ref(s), pe_decay=ctx.u(0.1, 0.5))
    imgs = acquire(ctx.subject, st, [sig(ctx, s)], o, rng)[0]
    acq = dict(tr=tr, te=te, ti=None, fa=120.0 if ctx.vendor != "GE" else 90.0, etl=int(rng.integers(140, 281)),
               mr_type="3D", family="space", fat_sat=False, pe_axis=o.pe_axis, pixel_bw=ctx.u(500, 800))
    return [make_series("t2_3d", "space", st, frames_from(st, imgs), acq, post_contrast=ctx.post, acq_matrix=(o.acq_c, o.acq_r))]


def make_ciss(ctx: Ctx) -> list:
    rng = ctx.rng
    t = ctx.subject.tissue_params(ctx.post)
    tr = ctx.u(5, 10)
    fa = ctx.u(40, 80)
    s = physics.bssfp(t, tr, fa)
    s[CH["artery"]] *= 1.2
    plane = choose_plane(ctx, {"axial": 0.8, "coronal": 0.12, "sagittal": 0.05, "oblique": 0.03})
    res = round(ctx.u(0.4, 0.75), 2)
    n = int(rng.integers(48, 145))
    st = plan(ctx, plane, fov=round(ctx.u(140, 200)), matrix=ctx.choice([256, 320, 384, 512], [0.3, 0.3, 0.25, 0.15]),
              n_slices=n, spacing=res, thickness=res, keep_n=ctx.max_images, centre=IAC_CENTRE, jitter=3.0,
              rect=ctx.choice([1.0, 0.875, 0.75]), small_tilt=6.0)
    o = opts_for(ctx, st, res=0.9, snr=25, ref=wm_ref(s))
    sub = ctx.subject
    combined = rng.random() < 0.85  # CISS / FIESTA-C (phase-cycled) vs plain TrueFISP

    def bands(samples, idx):
        fld = ndi.map_coordinates(sub.phantom.field_ppm, idx, order=1, mode="nearest").mean(axis=1)
        theta = 2 * np.pi * fld * 42.58 * ctx.field * tr / 1000.0
        f1 = physics.bssfp_offres_factor(theta)
        f2 = physics.bssfp_offres_factor(theta + np.pi)
        f = np.maximum(f1, f2) if combined else f1
        return [x * f for x in samples]

    imgs = acquire(sub, st, [sig(ctx, s)], o, rng, extra=bands)[0]
    acq = dict(tr=tr, te=tr / 2, ti=None, fa=fa, etl=1, mr_type="3D", family="ciss" if combined else "trufi",
               fat_sat=False, pe_axis=o.pe_axis, pixel_bw=ctx.u(300, 800))
    return [make_series("ciss", acq["family"], st, frames_from(st, imgs), acq, post_contrast=ctx.post,
                        acq_matrix=(o.acq_c, o.acq_r))]


def make_flair(ctx: Ctx) -> list:
    rng = ctx.rng
    t = ctx.subject.tissue_params(ctx.post)
    tr, te, etl = ctx.u(8000, 11000), ctx.u(80, 140), int(rng.integers(12, 31))
    trec = tr - etl * 10 - 2300
    ti = physics.csf_null_ti(ctx.field, trec) * ctx.u(0.95, 1.03)
    s = physics.inversion_recovery(t, tr, te, ti, trec=tr - ti - etl * 10)
    s[CH["artery"]] *= 0.1
    s[CH["vein"]] *= 0.3
    fs = rng.random() < 0.2
    if fs:
        s = fat_suppress(ctx, s)
    plane = choose_plane(ctx, {"axial": 0.68, "coronal": 0.2, "sagittal": 0.08, "oblique": 0.04})
    st = brain_2d(ctx, plane)
    o = opts_for(ctx, st, res=1.0, snr=22, ref=wm_ref(s), pe_decay=ctx.u(0.0, 0.25))
    imgs = acquire(ctx.subject, st, [sig(ctx, s)], o, rng)[0]
    acq = dict(tr=tr, te=te, ti=ti, fa=float(ctx.choice([90.0, 150.0, 180.0])), etl=etl, mr_type="2D", family="flair",
               fat_sat=fs, pe_axis=o.pe_axis, pixel_bw=ctx.u(150, 300))
    return [make_series("flair", "flair", st, frames_from(st, imgs), acq, post_contrast=ctx.post, fat_sat=fs,
                        acq_matrix=(o.acq_c, o.acq_r))]


def make_flair_3d(ctx: Ctx) -> list:
    rng = ctx.rng
    t = ctx.subject.tissue_params(ctx.post)
    tr, te = ctx.u(4800, 8000), ctx.u(270, 450)
    ti = physics.csf_null_ti(ctx.field, tr - 1900 - 600) * ctx.u(0.95, 1.03)
    s = physics.variable_flip_tse(t, tr, te, ti=ti)
    s[CH["artery"]] *= 0.05
    s[CH["vein"]] *= 0.1
    plane = choose_plane(ctx, {"sagittal": 0.78, "axial": 0.15, "coronal": 0.05, "oblique": 0.02})
    res = round(ctx.u(0.9, 1.2), 2)
    st = _stack_3d(ctx, plane, res, int(ctx.choice([160, 176, 192])), fov=round(ctx.u(230, 256)),
                   matrix=ctx.choice([256, 320, 512], [0.5, 0.2, 0.3]))
    o = opts_for(ctx, st, res=1.0, snr=22, ref=wm_ref(s), pe_decay=ctx.u(0.1, 0.5))
    imgs = acquire(ctx.subject, st, [sig(ctx, s)], o, rng)[0]
    acq = dict(tr=tr, te=te, ti=ti, fa=120.0 if ctx.vendor != "GE" else 90.0, etl=int(rng.integers(160, 281)),
               mr_type="3D", family="spcir", fat_sat=False, pe_axis=o.pe_axis, pixel_bw=ctx.u(500, 800))
    return [make_series("flair_3d", "spcir", st, frames_from(st, imgs), acq, post_contrast=ctx.post, acq_matrix=(o.acq_c, o.acq_r))]
