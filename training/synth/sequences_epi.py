"""EPI-based recipes: diffusion (+ADC), DSC perfusion, BOLD, ASL, field maps, FA maps.

Time series and multi-b series use the fact that the signal is linear in
the compartment signals: a few basis volumes are sampled once and every
b-value/time point is a weighted sum of them.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from . import physics
from .anatomy import CH
from .geometry import even_subset
from .imaging import AcqOpts, bias_field, epi_distort, reconstruct, sample_volumes, slice_indices
from .sequences import Ctx, brain_2d, choose_plane, fat_suppress, make_series, plan, wm_ref
from .series import Frame
from .subject import BRAIN_CENTRE_ANAT

GAMMA_MHZ = 42.58


def _epi_stack(ctx: Ctx, plane, thick=(3.0, 5.0), gap=(0.0, 0.3), matrix=None, fov=(220, 240), n_rng=(18, 40), keep_n=None):
    th = round(ctx.u(*thick), 1)
    sp = round(th * (1 + ctx.u(*gap)), 2)
    cover = {"axial": 135, "coronal": 160, "sagittal": 140, "oblique": 140}[plane] * ctx.u(0.8, 1.1)
    n = int(np.clip(round(cover / sp), *n_rng))
    m = matrix or int(ctx.choice([96, 128, 128, 192, 256], [0.15, 0.3, 0.15, 0.15, 0.25]))
    return plan(ctx, plane, fov=round(ctx.u(*fov)), matrix=m, n_slices=n, spacing=sp, thickness=th,
                keep_n=keep_n or ctx.max_images, centre=BRAIN_CENTRE_ANAT, jitter=5.0)


def _epi_render(ctx: Ctx, st, basis, *, snr, ref, te, acq_mat, bw_hz=None, dropout=True, noise=True):
    """Sample ``basis`` volumes on ``st`` with EPI distortion/dropout; returns acquired-grid arrays
    (list of (K, n, n)) and a function turning one acquired image into a recon image."""
    rng = ctx.rng
    sub = ctx.subject
    n = acq_mat
    idx = slice_indices(sub, st, n, n)
    samples = sample_volumes(sub, basis, idx)
    fld = ndi.map_coordinates(sub.phantom.field_ppm, idx, order=1, mode="nearest").mean(axis=1)
    hz = fld * GAMMA_MHZ * ctx.field
    pe_axis = 0
    bw = bw_hz or ctx.u(15, 40)
    shift = hz / bw * ctx.choice([-1, 1])
    if dropout:
        # through-plane dephasing: |sinc(G_z * thickness * TE)| with G_z the B0 gradient along the normal (Hz/mm)
        d = sub.patient_to_index(np.stack([st.centre, st.centre + st.normal]))
        dn = (d[:, 1] - d[:, 0]).reshape(3, 1, 1, 1, 1)
        f2 = ndi.map_coordinates(sub.phantom.field_ppm, idx + dn, order=1, mode="nearest").mean(axis=1)
        gz = (f2 - fld) * GAMMA_MHZ * ctx.field  # Hz per mm
        att = np.abs(np.sinc(gz * st.thickness * te / 1000.0))
        samples = [s * att for s in samples]
    opts = AcqOpts(acq_r=n, acq_c=n, snr=1e9, ref_level=ref, pe_axis=pe_axis, field_t=ctx.field,
                   bias=ctx.u(0.1, 0.3), filter=ctx.choice(["none", "hamming", "fermi"]),
                   nyquist=ctx.u(0.01, 0.05), pe_decay=ctx.u(0.1, 0.4), partial_fourier=ctx.choice([1.0, 0.75, 0.875]))
    bias = bias_field(rng, n, n, opts.bias)
    sigma_opts = AcqOpts(**{**opts.__dict__, "snr": snr * (1.7 if ctx.hi else 1.0)})

    def recon(img_acq, k):
        img = epi_distort(img_acq, shift[k], pe_axis)
        return reconstruct(img, (st.rows, st.cols), sigma_opts if noise else opts, rng, bias)

    return samples, recon, opts


# ----------------------------------------------------------------------------- diffusion

def make_dwi(ctx: Ctx, with_adc=True) -> list:
    """DWI (trace or raw directions) and optionally the ADC map computed from it."""
    rng = ctx.rng
    sub = ctx.subject
    t = sub.tissue_params(ctx.post)
    tr = ctx.u(3000, 8000)
    te = ctx.u(70, 110) if not ctx.hi else ctx.u(55, 90)
    s0 = physics.spin_echo(t, tr, te)
    s0 = fat_suppress(ctx, s0, eff=ctx.u(0.02, 0.1))
    s0[CH["artery"]] *= 0.05
    s0[CH["vein"]] *= 0.2
    bset = ctx.choice([[0, 1000], [0, 1000], [0, 1000], [50, 1000], [0, 500, 1000], [0, 1000, 2000], [0, 800], [0, 1500],
                       [0, 2000], [0, 1000, 2500]])
    layout = ctx.choice(["trace", "raw"], [0.7, 0.3])
    plane = choose_plane(ctx, {"axial": 0.88, "coronal": 0.05, "sagittal": 0.04, "oblique": 0.03})
    nb = len(bset)
    ndir = 3 if layout == "raw" else 0
    n_img_vols = (1 + (nb - 1) * ndir) if layout == "raw" else nb
    keep = max(3, ctx.max_images // n_img_vols)
    mosaic = ctx.vendor == "Siemens" and ctx.mosaic_ok and layout == "raw" and rng.random() < 0.6
    # Research DWI/DTI is often stored at its acquisition matrix (2-3 mm pixels: 82 over 222 mm,
    # 80 over 240 mm), clinical DWI interpolated to 256.
    stored = int(ctx.choice([80, 88, 96, 128, 192, 256], [0.1, 0.08, 0.12, 0.35, 0.15, 0.2]))
    st = _epi_stack(ctx, plane, keep_n=keep, thick=(2.0, 5.0), matrix=stored)
    if mosaic:  # one mosaic file per volume holds (a subset of) the slices
        st.keep = even_subset(st.n_slices, min(st.n_slices, 16))
    acq_mat = int(min(st.rows, ctx.choice([96, 128, 160, 192])))
    adc = t.adc.copy()
    adc[CH["artery"]] = adc[CH["vein"]] = 3e-3
    basis = [s0]
    dirs = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
    for b in bset[1:]:
        if layout == "trace":
            basis.append(s0 * np.exp(-b * adc))
        else:
            for d in range(ndir):
                a = adc.copy()
                a[CH["wm"]] *= ctx.u(0.6, 1.4)
                basis.append(s0 * np.exp(-b * a))
    vols = [sub.signal_volume(b) for b in basis]
    samples, recon, opts = _epi_render(ctx, st, vols, snr=32, ref=wm_ref(s0), te=te, acq_mat=acq_mat)
    frames = []
    inst = 0
    vol_info = [(bset[0], None, False)]
    for b in bset[1:]:
        if layout == "trace":
            vol_info.append((b, None, True))
        else:
            vol_info += [(b, dirs[d], False) for d in range(ndir)]
    recon_imgs = []
    for vi, (b, d, tr_flag) in enumerate(vol_info):
        imgs = [recon(samples[vi][k], k) for k in range(samples[vi].shape[0])]
        recon_imgs.append(imgs)
        if mosaic:
            fr = _time_series_frames(ctx, st, [imgs], [vi], True)[0]
            fr.b_value, fr.b_dir = float(b), d
            frames.append(fr)
            continue
        for kk, k in enumerate(st.keep):
            inst_no = vi * st.n_slices + k + 1
            frames.append(Frame(pixels=imgs[kk], ipp=[float(v) for v in st.ipp(k)], iop=st.iop, instance=inst_no,
                                slice_index=k, b_value=float(b), b_dir=d, trace=tr_flag and b > 0,
                                temporal=vi + 1))
    acq = dict(tr=tr, te=te, ti=None, fa=float(ctx.choice([90.0, 90.0, 78.0])), etl=int(ctx.choice([acq_mat // 2, acq_mat // 3, acq_mat])), mr_type="2D",
               family="dwi", fat_sat=True, pe_axis=0, pixel_bw=ctx.u(1000, 2000), b_values=bset, layout=layout,
               epi_factor=acq_mat, mosaic=mosaic)
    dwi = make_series("dwi", layout, st, frames, acq, acq_matrix=(acq_mat, acq_mat), fat_sat=True,
                      n_temporal=len(vol_info))
    out = [dwi]
    if with_adc:
        b0_imgs = recon_imgs[0]
        bmax = bset[-1]
        # trace at the highest b (geometric mean of directions for raw layouts)
        if layout == "trace":
            bimgs = recon_imgs[-1]
        else:
            last = recon_imgs[-ndir:]
            bimgs = [np.exp(np.mean([np.log(np.maximum(x[k], 1e-6)) for x in last], axis=0)) for k in range(len(b0_imgs))]
        aframes = []
        for kk, k in enumerate(st.keep):
            s0i, sbi = b0_imgs[kk], bimgs[kk]
            thr = np.percentile(s0i, 99) * ctx.u(0.06, 0.12)
            with np.errstate(divide="ignore", invalid="ignore"):
                a = np.log(np.maximum(s0i, 1e-6) / np.maximum(sbi, 1e-6)) / (bmax - bset[0])
            a = np.where(s0i > thr, np.clip(a, 0, 4e-3), 0.0) * 1e6  # 10^-6 mm2/s
            aframes.append(Frame(pixels=a, ipp=[float(v) for v in st.ipp(k)], iop=st.iop, instance=k + 1, slice_index=k))
        acq_a = dict(acq, layout="adc", mosaic=False)
        out.append(make_series("adc", "adc", st, aframes, acq_a, kind="ADC", derived=True, acq_matrix=(acq_mat, acq_mat),
                               fat_sat=True))
    return out


# ----------------------------------------------------------------------------- DSC perfusion

def _time_series_frames(ctx, st, images_by_t, t_idx, mosaic: bool):
    """Frames for a (T, K) set of images, or one Siemens mosaic per time point."""
    frames = []
    for ti, imgs in zip(t_idx, images_by_t):
        if mosaic:
            n = len(imgs)
            tiles = int(np.ceil(np.sqrt(n)))
            r, c = imgs[0].shape
            mos = np.zeros((tiles * r, tiles * c), np.float32)
            for j, im in enumerate(imgs):
                mos[(j // tiles) * r:(j // tiles + 1) * r, (j % tiles) * c:(j % tiles + 1) * c] = im
            dr, dc = st.pixel_spacing
            p0 = st.ipp(st.keep[0])
            ipp = p0 - st.row * dc * (tiles * c - c) / 2.0 - st.col * dr * (tiles * r - r) / 2.0
            frames.append(Frame(pixels=mos, ipp=[float(v) for v in ipp], iop=st.iop, instance=ti + 1, slice_index=0,
                                temporal=ti + 1, mosaic_tiles=n, image_tokens=("MOSAIC",)))
        else:
            for kk, k in enumerate(st.keep):
                frames.append(Frame(pixels=imgs[kk], ipp=[float(v) for v in st.ipp(k)], iop=st.iop,
                                    instance=ti * st.n_slices + k + 1, slice_index=k, temporal=ti + 1))
    return frames


def make_perfusion(ctx: Ctx) -> list:
    rng = ctx.rng
    sub = ctx.subject
    t = sub.tissue_params(False)
    tr = ctx.u(1300, 2000)
    te = ctx.u(25, 35) if ctx.hi else ctx.u(40, 50)
    fa = ctx.u(60, 90)
    s0 = physics.spoiled_gre(t, tr, te, fa)
    s0 = fat_suppress(ctx, s0, eff=0.1)
    n_dyn = int(rng.integers(40, 81))
    t0 = ctx.u(10, 20)
    times = np.arange(n_dyn) * tr / 1000.0
    ca = physics.dsc_concentration(times, t0)
    k = ctx.u(1.5, 3.0)
    conc = {"artery": ca, "vein": physics.dsc_concentration(times, t0 + ctx.u(3, 6)),
            "gm": 0.04 * physics.dsc_concentration(times, t0 + 1.5, beta=2.2) * 6,
            "wm": 0.02 * physics.dsc_concentration(times, t0 + 2.5, beta=2.8) * 6,
            "enh": 0.3 * physics.dsc_concentration(times, t0 + 1.0, beta=2.0)}
    # basis: static part, then one basis per perfused compartment
    names = list(conc)
    static = s0.copy()
    basis = [static]
    for nm in names:
        static[CH[nm]] = 0.0
        b = np.zeros_like(s0)
        b[CH[nm]] = s0[CH[nm]]
        if nm in ("gm", "wm"):
            b[-1] = 0.0
        basis.append(b)
    basis[0] = static
    plane = choose_plane(ctx, {"axial": 0.95, "oblique": 0.05})
    n_write_t = int(rng.integers(5, 9))
    peak = int(np.argmax(ca))
    t_idx = sorted(set([0, max(0, peak - 3), peak, min(n_dyn - 1, peak + 2)] +
                       [int(x) for x in np.linspace(0, n_dyn - 1, n_write_t)]))
    mosaic = ctx.vendor == "Siemens" and ctx.mosaic_ok and rng.random() < 0.7
    keep_n = 12 if mosaic else max(2, ctx.max_images // len(t_idx))
    st = _epi_stack(ctx, plane, thick=(4.0, 5.0), n_rng=(12, 26), matrix=int(ctx.choice([128, 128, 256])), keep_n=keep_n)
    if mosaic:
        st.keep = list(range(st.n_slices))
    acq_mat = int(min(st.rows, ctx.choice([96, 128])))
    vols = [sub.signal_volume(b) for b in basis]
    samples, recon, opts = _epi_render(ctx, st, vols, snr=45, ref=wm_ref(s0), te=te, acq_mat=acq_mat)
    images_by_t = []
    for ti in t_idx:
        imgs = []
        for kk in range(samples[0].shape[0]):
            img = samples[0][kk].copy()
            for j, nm in enumerate(names):
                img += samples[j + 1][kk] * np.exp(-k * te / 30.0 * conc[nm][ti] * (6.0 if nm in ("artery", "vein") else 1.0))
            imgs.append(recon(img, kk))
        images_by_t.append(imgs)
    frames = _time_series_frames(ctx, st, images_by_t, t_idx, mosaic)
    acq = dict(tr=tr, te=te, ti=None, fa=fa, etl=acq_mat, mr_type="2D", family="dsc", fat_sat=True, pe_axis=0,
               pixel_bw=ctx.u(1200, 2000), epi_factor=acq_mat, mosaic=mosaic, n_slices=st.n_slices)
    return [make_series("perfusion", "dsc", st, frames, acq, acq_matrix=(acq_mat, acq_mat), n_temporal=n_dyn,
                        post_contrast=True)]


# ----------------------------------------------------------------------------- other: BOLD, ASL, field maps, FA

def make_bold(ctx: Ctx) -> list:
    rng = ctx.rng
    sub = ctx.subject
    t = sub.tissue_params(ctx.post)
    tr = ctx.u(700, 3000)
    te = ctx.u(28, 35) if ctx.hi else ctx.u(40, 50)
    fa = ctx.u(52, 90)
    s0 = fat_suppress(ctx, physics.spoiled_gre(t, tr, te, fa), eff=0.1)
    n_vol = int(rng.integers(100, 400))
    plane = choose_plane(ctx, {"axial": 0.85, "oblique": 0.1, "sagittal": 0.05})
    t_idx = sorted(set(int(x) for x in np.linspace(0, n_vol - 1, int(rng.integers(3, 7)))))
    mosaic = ctx.vendor == "Siemens" and ctx.mosaic_ok and rng.random() < 0.6
    keep_n = 12 if mosaic else max(2, ctx.max_images // len(t_idx))
    st = _epi_stack(ctx, plane, thick=(2.0, 4.0), gap=(0.0, 0.25), n_rng=(30, 72), matrix=int(ctx.choice([64, 80, 96, 128])),
                    keep_n=keep_n)
    if mosaic:
        st.keep = even_keep = list(range(0, st.n_slices, max(1, st.n_slices // 16)))
    samples, recon, opts = _epi_render(ctx, st, [sub.signal_volume(s0)], snr=60, ref=wm_ref(s0), te=te, acq_mat=st.rows)
    images_by_t = [[recon(samples[0][kk] * (1 + 0.01 * rng.standard_normal()), kk) for kk in range(samples[0].shape[0])]
                   for _ in t_idx]
    frames = _time_series_frames(ctx, st, images_by_t, t_idx, mosaic)
    acq = dict(tr=tr, te=te, ti=None, fa=fa, etl=st.rows, mr_type="2D", family="bold", fat_sat=True, pe_axis=0,
               pixel_bw=ctx.u(1500, 2600), epi_factor=st.rows, mosaic=mosaic, n_slices=st.n_slices)
    return [make_series("other", "bold", st, frames, acq, acq_matrix=(st.rows, st.rows), n_temporal=n_vol)]


def make_asl(ctx: Ctx) -> list:
    rng = ctx.rng
    sub = ctx.subject
    t = sub.tissue_params(False)
    variant = ctx.choice(["raw", "m0", "cbf"], [0.4, 0.25, 0.35])
    plane = choose_plane(ctx, {"axial": 0.95, "oblique": 0.05})
    st = _epi_stack(ctx, plane, thick=(3.0, 6.0), gap=(0.0, 0.2), n_rng=(12, 30), matrix=int(ctx.choice([64, 64, 80, 128])),
                    keep_n=ctx.max_images)
    if variant == "cbf":
        cbf = np.zeros(len(t.pd))
        cbf[CH["gm"]], cbf[CH["wm"]] = ctx.u(40, 70), ctx.u(15, 30)
        cbf[CH["artery"]] = ctx.u(80, 150)
        cbf[-1] = ctx.u(10, 80)
        samples, recon, _ = _epi_render(ctx, st, [sub.signal_volume(cbf)], snr=8, ref=cbf[CH["gm"]], te=12,
                                        acq_mat=st.rows, dropout=False)
        imgs = [recon(samples[0][k], k) for k in range(samples[0].shape[0])]
        kind, derived, tr, te = "MAP", True, ctx.u(4000, 5000), ctx.u(10, 16)
    else:
        # readouts: Philips 3D GraSE TE 8-14 ms (dev 4250/9, ETL 112), Siemens/GE 2D EPI or 3D GRASE/spiral 10-16
        tr, te = ctx.u(3500, 5000), (ctx.u(8, 14) if ctx.vendor == "Philips" else ctx.u(10, 16))
        m0 = physics.spin_echo(t, tr if variant == "m0" else 2000.0, te)
        if variant == "raw":
            m0 = m0 * 0.12  # background suppression
        samples, recon, _ = _epi_render(ctx, st, [sub.signal_volume(m0)], snr=30, ref=wm_ref(m0), te=te, acq_mat=st.rows)
        imgs = [recon(samples[0][k], k) for k in range(samples[0].shape[0])]
        kind, derived = "M", False
    frames = [Frame(pixels=im, ipp=[float(v) for v in st.ipp(k)], iop=st.iop, instance=k + 1, slice_index=k)
              for k, im in zip(st.keep, imgs)]
    acq = dict(tr=tr, te=te, ti=ctx.u(1800, 2000), fa=90.0, etl=st.rows, mr_type=ctx.choice(["2D", "3D"]), family="asl",
               fat_sat=True, pe_axis=0, pixel_bw=ctx.u(1500, 3000), variant=variant)
    # label/control source series are dynamic scans: their number of dynamics is NumberOfTemporalPositions
    # (Philips/GE write it; dev Philips 3DpCASL source: 3)
    n_dyn = int(ctx.choice([2, 3, 4, 6, 8, 10, 15, 30, 40])) if variant == "raw" else None
    return [make_series("other", "asl_" + variant, st, frames, acq, kind=kind, derived=derived,
                        acq_matrix=(st.rows, st.rows), n_temporal=n_dyn)]


def make_fieldmap_epi(ctx: Ctx) -> list:
    """Reversed-phase-encoding spin-echo EPI b0 pair for distortion correction (topup / pepolar; Siemens CMRR
    SpinEchoFieldMap, GE research/ABCD epi_pepolar with ScanningSequence EP\\RM [dev]): T2-weighted SE-EPI like
    a DWI b0, but no diffusion encoding (no DIFFUSION image type, Siemens no b-value); class other."""
    rng = ctx.rng
    sub = ctx.subject
    t = sub.tissue_params(ctx.post)
    tr, te = ctx.u(5000, 9000), (ctx.u(55, 80) if ctx.hi else ctx.u(70, 95))
    s0 = fat_suppress(ctx, physics.spin_echo(t, tr, te), eff=0.05)
    plane = choose_plane(ctx, {"axial": 0.9, "oblique": 0.1})
    st = _epi_stack(ctx, plane, thick=(2.0, 3.5), gap=(0.0, 0.1), n_rng=(40, 80), matrix=int(ctx.choice([80, 96, 104, 128])),
                    keep_n=ctx.max_images)
    samples, recon, _ = _epi_render(ctx, st, [sub.signal_volume(s0)], snr=30, ref=wm_ref(s0), te=te, acq_mat=st.rows)
    frames = [Frame(pixels=recon(samples[0][kk], kk), ipp=[float(v) for v in st.ipp(k)], iop=st.iop, instance=k + 1, slice_index=k)
              for kk, k in enumerate(st.keep)]
    acq = dict(tr=tr, te=te, ti=None, fa=90.0, etl=1 if ctx.vendor == "GE" else st.rows, mr_type="2D", family="fmap_epi",
               fat_sat=True, pe_axis=0, pixel_bw=ctx.u(1500, 2600), epi_factor=st.rows)
    return [make_series("other", "fieldmap_epi", st, frames, acq, acq_matrix=(st.rows, st.rows),
                        n_temporal=int(ctx.choice([1, 2, 3, 4])))]


def make_fieldmap(ctx: Ctx) -> list:
    rng = ctx.rng
    sub = ctx.subject
    t = sub.tissue_params(ctx.post)
    if ctx.vendor in ("Siemens", "GE") and rng.random() < 0.35:
        return make_fieldmap_epi(ctx)
    variant = ctx.choice(["magnitude", "phase"], [0.5, 0.5])
    mr_type, etl = "2D", 1
    if ctx.vendor == "Siemens":
        te1 = 4.92 if ctx.hi else ctx.u(4.0, 6.0)
        te2 = te1 + (2.46 if ctx.hi else 4.76)
        tr, fa = ctx.u(400, 700), ctx.u(40, 60)
    elif ctx.vendor == "Philips":
        # Philips B0 map: 3D dual-echo FFE, short TR, low flip, delta TE = one fat-water in-phase period
        # (2.3 ms at 3 T, 4.6 ms at 1.5 T), ETL 2; dev: 20/2.3,4.6/FA 10, 3 mm, 80x80 [dev]
        dte = 2.3 if ctx.hi else 4.6
        te1 = dte if rng.random() < 0.7 else ctx.u(1.5, 3.0)
        te2 = te1 + dte
        tr, fa = ctx.u(max(10.0, te2 + 3), 25), ctx.u(8, 25)
        mr_type, etl = "3D", 2
    else:
        te1 = ctx.u(2.0, 5.0)
        te2 = te1 + ctx.u(1.0, 3.0)
        tr, fa = ctx.u(150, 900), ctx.u(10, 60)
    plane = choose_plane(ctx, {"axial": 0.9, "oblique": 0.07, "coronal": 0.03})
    st = _epi_stack(ctx, plane, thick=(2.0, 4.0), gap=(0.0, 0.3), n_rng=(30, 72), matrix=int(ctx.choice([64, 80, 96, 128])),
                    keep_n=ctx.max_images)
    n = st.rows
    s = physics.spoiled_gre(t, tr, te1, fa)
    idx = slice_indices(sub, st, n, n)
    mag = sample_volumes(sub, [sub.signal_volume(s)], idx)[0]
    bias = bias_field(rng, n, n, 0.2)
    o = AcqOpts(acq_r=n, acq_c=n, snr=40 * (1.7 if ctx.hi else 1), ref_level=wm_ref(s), field_t=ctx.field)
    if variant == "magnitude":
        imgs = [reconstruct(mag[k], (st.rows, st.cols), o, rng, bias) for k in range(mag.shape[0])]
        kind = "M"
        te = te1
    else:
        fld = ndi.map_coordinates(sub.phantom.field_ppm, idx, order=1, mode="nearest").mean(axis=1)
        hz = fld * GAMMA_MHZ * ctx.field + rng.normal(0, 20)
        dphi = 2 * np.pi * hz * (te2 - te1) / 1000.0
        imgs = []
        for k in range(mag.shape[0]):
            m = reconstruct(mag[k], (st.rows, st.cols), o, rng, bias)
            ph = ndi.zoom(dphi[k], (st.rows / n, st.cols / n), order=1)[:st.rows, :st.cols]
            noise_ph = rng.uniform(-np.pi, np.pi, m.shape)
            w = np.clip(m / (np.percentile(m, 95) * 0.15 + 1e-6), 0, 1)
            ph = np.angle(np.exp(1j * (w * ph + (1 - w) * noise_ph)))
            imgs.append(ph)
        kind = "P"
        te = te2
    frames = [Frame(pixels=im, ipp=[float(v) for v in st.ipp(k)], iop=st.iop, instance=k + 1, slice_index=k,
                    echo_time=te) for k, im in zip(st.keep, imgs)]
    acq = dict(tr=tr, te=te, ti=None, fa=fa, etl=etl, mr_type=mr_type, family="fieldmap", fat_sat=False, pe_axis=0,
               pixel_bw=ctx.u(250, 500), te1=te1, te2=te2)
    return [make_series("other", "fieldmap_" + variant, st, frames, acq, kind=kind, acq_matrix=(n, n),
                        derived=False)]


def make_tensor_b0(ctx: Ctx) -> list:
    """Derived b0 image of a DTI reconstruction (Siemens TENSOR_B0): T2-weighted EPI, class other."""
    sub = ctx.subject
    t = sub.tissue_params(ctx.post)
    tr, te = ctx.u(3000, 9000), ctx.u(55, 100)
    s0 = fat_suppress(ctx, physics.spin_echo(t, tr, te), eff=0.05)
    st = _epi_stack(ctx, choose_plane(ctx, {"axial": 0.9, "oblique": 0.1}), thick=(1.5, 3.0), gap=(0.0, 0.0), n_rng=(40, 90))
    samples, recon, _ = _epi_render(ctx, st, [sub.signal_volume(s0)], snr=30, ref=wm_ref(s0), te=te, acq_mat=min(st.rows, 128))
    # the tensor fit's b0 keeps the diffusion attributes of its source: b = 0 (XA: MRDiffusionSequence with
    # DiffusionDirectionality NONE), and the DTI acquisition's number of volumes as temporal positions [dev]
    frames = [Frame(pixels=recon(samples[0][kk], kk), ipp=[float(v) for v in st.ipp(k)], iop=st.iop, instance=k + 1, slice_index=k,
                    b_value=0.0)
              for kk, k in enumerate(st.keep)]
    acq = dict(tr=tr, te=te, ti=None, fa=float(ctx.choice([90.0, ctx.u(75, 90)])), etl=int(ctx.choice([54, 64, 72, 96])),
               mr_type="2D", family="fa", fat_sat=True, pe_axis=0, pixel_bw=ctx.u(1500, 2200), b_values=[0, 1000])
    n_dirs = int(ctx.choice([6, 12, 20, 30, 64, 80]))
    return [make_series("other", "fa_tensor_b0", st, frames, acq, derived=True, acq_matrix=(128, 128),
                        n_temporal=n_dirs + 1)]


def make_fa(ctx: Ctx) -> list:
    """The derived maps a DTI reconstruction writes, each its own series: FA (grey), colour FA (RGB)
    and, mostly on Siemens, the tensor fit's b0 image. Scanners write them together from one
    acquisition [dev]; sites keep some or all of them."""
    rng = ctx.rng
    siemens = ctx.vendor == "Siemens"
    out = []
    if rng.random() < 0.85:
        out += _fa_map(ctx, colour=False)
    if rng.random() < (0.5 if siemens else 0.35):
        out += _fa_map(ctx, colour=True)
    if rng.random() < (0.8 if siemens else 0.1):  # TENSOR_B0 is a Siemens DTI output
        out += make_tensor_b0(ctx)
    return out or _fa_map(ctx, colour=False)


def _fa_map(ctx: Ctx, colour: bool) -> list:
    """FA map (grey) or colour-FA (RGB) derived from a DTI acquisition."""
    rng = ctx.rng
    sub = ctx.subject
    plane = choose_plane(ctx, {"axial": 0.9, "oblique": 0.05, "coronal": 0.05})
    st = _epi_stack(ctx, plane, thick=(2.0, 3.0), gap=(0.0, 0.0), n_rng=(40, 75), matrix=int(ctx.choice([96, 128, 256])),
                    keep_n=ctx.max_images)
    n = min(st.rows, 128)
    fa = np.zeros(len(sub.tissues.pd))
    fa[CH["wm"]], fa[CH["gm"]], fa[CH["csf"]] = ctx.u(0.45, 0.6), 0.15, 0.05
    fa[CH["muscle"]], fa[CH["fat"]], fa[-1] = 0.25, 0.1, 0.3
    idx = slice_indices(sub, st, n, n)
    v = sub.signal_volume(fa, texture=False)
    fa_img = sample_volumes(sub, [v], idx)[0]
    frames = []
    for kk, k in enumerate(st.keep):
        img = fa_img[kk] * (1 + 0.5 * ndi.gaussian_filter(rng.standard_normal(fa_img[kk].shape), 2)) + np.abs(rng.normal(0, 0.03, fa_img[kk].shape)) * (fa_img[kk] > 0.01)
        img = np.clip(img, 0, 1)
        img = ndi.zoom(img, (st.rows / n, st.cols / n), order=1)[:st.rows, :st.cols]
        if colour:
            d = np.stack([ndi.gaussian_filter(rng.standard_normal(img.shape), 6) for _ in range(3)], -1)
            d = np.abs(d) / (np.linalg.norm(d, axis=-1, keepdims=True) + 1e-6)
            img = (np.clip(d * img[..., None] * 1.6, 0, 1) * 255).astype(np.uint8)
        frames.append(Frame(pixels=img, ipp=[float(x) for x in st.ipp(k)], iop=st.iop, instance=k + 1, slice_index=k))
    acq = dict(tr=ctx.u(6000, 10000), te=ctx.u(60, 95), ti=None, fa=90.0, etl=n, mr_type="2D", family="fa",
               fat_sat=True, pe_axis=0, pixel_bw=ctx.u(1500, 2000), b_values=[0, 1000])
    return [make_series("other", "fa_colour" if colour else "fa", st, frames, acq, kind="RGB" if colour else "MAP",
                        derived=True, acq_matrix=(n, n))]
