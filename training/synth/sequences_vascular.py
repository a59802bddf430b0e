"""Vascular recipes: the SWI family (magnitude, phase, processed SWI, minIP) and TOF (+ MIPs)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from . import physics
from .anatomy import CH
from .geometry import SliceStack, even_subset
from .imaging import AcqOpts, bias_field, reconstruct, sample_volumes, slice_indices
from .sequences import CIRCLE_OF_WILLIS, Ctx, choose_plane, make_series, plan, wm_ref
from .series import Frame
from .subject import BRAIN_CENTRE_ANAT

GAMMA_MHZ = 42.58


def _substack(st: SliceStack, keep) -> SliceStack:
    s = SliceStack(st.row, st.col, st.centre, st.rows, st.cols, st.fov_r, st.fov_c, st.n_slices, st.spacing,
                   st.thickness, list(keep))
    return s


def make_swi_family(ctx: Ctx, which=("swi_mag", "swi_phase", "swi", "swi_mip")) -> list:
    """One 3D flow-compensated GRE, rendered as the series scanners export from it."""
    rng = ctx.rng
    sub = ctx.subject
    t = sub.tissue_params(ctx.post)
    if ctx.hi:
        tr, te, fa = ctx.u(27, 35), ctx.u(18, 25), ctx.u(12, 17)
    else:
        tr, te, fa = ctx.u(45, 52), ctx.u(35, 42), ctx.u(15, 20)
    s = physics.spoiled_gre(t, tr, te, fa)
    s[CH["vein"]] *= 0.35  # intra-voxel dephasing of deoxygenated blood
    plane = choose_plane(ctx, {"axial": 0.93, "oblique": 0.04, "coronal": 0.03})
    th = round(ctx.u(1.2, 2.0), 1)
    n_total = int(np.clip(round(ctx.u(90, 150) / th), 48, 128))
    block = int(min(n_total, 40))
    st = plan(ctx, plane, fov=round(ctx.u(210, 240)), matrix=ctx.choice([256, 320, 384, 448, 512], [0.3, 0.25, 0.2, 0.1, 0.15]),
              n_slices=n_total, spacing=th, thickness=th, centre=BRAIN_CENTRE_ANAT + np.array([0, 0, ctx.u(-10, 15)]),
              rect=ctx.choice([1.0, 0.875, 0.8125, 0.75]), jitter=4.0, small_tilt=8.0)
    start = int(rng.integers(0, n_total - block + 1))
    contiguous = list(range(start, start + block))
    n = int(min(st.cols, 192))
    nr = int(min(st.rows, round(192 * st.rows / st.cols)))
    idx = slice_indices(sub, st, nr, n, slices=contiguous)
    mag_s, fld = sample_volumes(sub, [sub.signal_volume(s), sub.phantom.field_ppm], idx)
    sign = -1.0 if ctx.vendor in ("Siemens", "Canon") else 1.0  # handedness differs by vendor
    phase = sign * 2 * np.pi * fld * GAMMA_MHZ * ctx.field * te / 1000.0
    phase += rng.uniform(-np.pi, np.pi) + np.linspace(0, ctx.u(-3, 3), nr)[None, :, None]  # coil/background phase
    bias = bias_field(rng, nr, n, ctx.u(0.1, 0.3))
    o = AcqOpts(acq_r=nr, acq_c=n, snr=ctx.u(25, 45) * (1.7 if ctx.hi else 1.0), ref_level=wm_ref(s), field_t=ctx.field,
                magnitude=False, filter=ctx.choice(["none", "hamming"]))
    mags, phs, swis = [], [], []
    power = 4
    for k in range(block):
        z = reconstruct(mag_s[k] * np.exp(1j * phase[k]), (st.rows, st.cols), o, rng, bias)
        m = np.abs(z)
        # high-pass: divide by a low-pass (Hanning-like) copy of the complex image
        lp = ndi.gaussian_filter(z.real, st.rows / 40.0) + 1j * ndi.gaussian_filter(z.imag, st.rows / 40.0)
        hp = np.angle(z * np.conj(lp))
        venous = (sign * hp) > 0  # phase of the paramagnetic (venous) sign for this vendor
        mask = np.where(venous, np.clip(1 - np.abs(hp) / np.pi, 0, 1), 1.0)
        mags.append(m)
        phs.append((hp, np.angle(z)))
        swis.append(m * mask ** power)
    # exported phase: high-pass filtered (Siemens Pha_Images, most SWIp) or raw wrapped phase (e.g. SWAN)
    p_filtered = {"Siemens": 0.85, "Philips": 0.7, "GE": 0.45, "Canon": 0.6}[ctx.vendor]
    use_filtered = rng.random() < p_filtered
    phs = [hp if use_filtered else raw for hp, raw in phs]
    keep_local = even_subset(block, min(block, ctx.max_images))
    out = []
    acq = dict(tr=tr, te=te, ti=None, fa=fa, etl=1, mr_type="3D", family="swi", fat_sat=False, pe_axis=1,
               pixel_bw=ctx.u(100, 200), n_partitions=n_total, flow_comp=True)
    keep_abs = [contiguous[i] for i in keep_local]
    sub_st = _substack(st, keep_abs)

    def frames_of(imgs):
        return [Frame(pixels=imgs[i], ipp=[float(v) for v in st.ipp(contiguous[i])], iop=st.iop,
                      instance=contiguous[i] + 1, slice_index=contiguous[i]) for i in keep_local]

    if "swi_mag" in which:
        out.append(make_series("swi_mag", "swi_mag", sub_st, frames_of(mags), dict(acq), acq_matrix=(n, nr)))
    if "swi_phase" in which:
        out.append(make_series("swi_phase", "swi_phase", sub_st, frames_of(phs), dict(acq), kind="P", acq_matrix=(n, nr)))
    if "swi" in which:
        out.append(make_series("swi", "swi", sub_st, frames_of(swis), dict(acq), derived=ctx.vendor != "Siemens",
                               acq_matrix=(n, nr)))
    if "swi_mip" in which:
        slab_mm = ctx.u(8, 16)
        w = max(2, int(round(slab_mm / th)))
        step = max(1, int(ctx.choice([w, max(1, w // 2), 1], [0.4, 0.4, 0.2])))
        src = swis if rng.random() < 0.85 else mags
        centres = list(range(w // 2, block - (w - w // 2) + 1, step))
        if len(centres) > ctx.max_images:
            centres = [centres[i] for i in even_subset(len(centres), ctx.max_images)]
        frames = []
        for j, c in enumerate(centres):
            lo = c - w // 2
            mip = np.min(np.stack(src[lo:lo + w]), axis=0)
            pos = st.centre + ((contiguous[lo] + contiguous[lo + w - 1]) / 2.0 - (st.n_slices - 1) / 2.0) * st.spacing * st.normal
            dr, dc = st.pixel_spacing
            ipp = pos - st.row * (st.cols / 2.0 - 0.5) * dc - st.col * (st.rows / 2.0 - 0.5) * dr
            frames.append(Frame(pixels=mip, ipp=[float(v) for v in ipp], iop=st.iop, instance=j + 1, slice_index=j))
        mst = SliceStack(st.row, st.col, st.centre, st.rows, st.cols, st.fov_r, st.fov_c, len(centres),
                         step * th, w * th, list(range(len(centres))))
        out.append(make_series("swi_mip", "minip", mst, frames, dict(acq, slab=w * th), kind="MNIP", derived=True,
                               acq_matrix=(n, nr)))
    return out


def make_tof_family(ctx: Ctx, with_mip=True) -> list:
    """3D multi-slab TOF source images and MIPs (rotating or single-plane)."""
    rng = ctx.rng
    sub = ctx.subject
    t = sub.tissue_params(False)
    tr = ctx.u(20, 25) if ctx.hi else ctx.u(24, 38)
    te = ctx.u(3.4, 3.7) if ctx.hi else ctx.u(6.0, 7.0)
    fa = ctx.u(18, 25)
    s = physics.spoiled_gre(t, tr, te, fa)
    mt = ctx.u(0.5, 0.7)  # magnetisation transfer pulses suppress parenchyma, not fat or blood
    for c in ("wm", "gm", "muscle", "enh", "skin", "disc"):
        s[CH[c]] *= mt
    s[-1] *= mt
    s[CH["fat"]] *= ctx.u(0.35, 0.55)  # TE at fat-water opposed phase, partial saturation
    m_ss_art = float(physics.spoiled_gre(t, tr, te, fa)[CH["artery"]])
    art_m0 = float(t.pd[CH["artery"]] * np.sin(np.deg2rad(fa)) * np.exp(-te / t.t2s[CH["artery"]]))
    s[CH["vein"]] *= 0.6  # saturation band above the slab
    static = s.copy()
    static[CH["artery"]] = 0.0
    th = round(ctx.u(0.5, 0.8), 2)
    n_slabs = int(rng.integers(3, 7))
    per_slab = int(np.clip(round(ctx.u(60, 130) / th / n_slabs) + 6, 20, 50))
    n_total = n_slabs * per_slab - (n_slabs - 1) * 6
    st = plan(ctx, "axial", fov=round(ctx.u(180, 220)), matrix=ctx.choice([384, 448, 512], [0.3, 0.2, 0.5]),
              n_slices=n_total, spacing=th, thickness=th, centre=CIRCLE_OF_WILLIS + np.array([0, 0, ctx.u(0, 20)]),
              rect=ctx.choice([1.0, 0.875, 0.75]), keep_n=ctx.max_images, jitter=3.0, small_tilt=8.0)
    if rng.random() < 0.05:
        st = plan(ctx, "coronal", fov=round(ctx.u(180, 220)), matrix=384, n_slices=n_total, spacing=th, thickness=th,
                  centre=CIRCLE_OF_WILLIS, keep_n=ctx.max_images)
    slab_len = (per_slab - 6) * th
    v_static = sub.signal_volume(static)
    art = np.zeros_like(s)
    art[CH["artery"]] = 1.0
    art[-1] = 0.0
    v_art = sub.signal_volume(art, texture=False)
    vel = sub.phantom.art_velocity

    def render(stack, slices, n_r, n_c):
        idx = slice_indices(sub, stack, n_r, n_c, slices=slices)
        a, f, v = sample_volumes(sub, [v_static, v_art, vel], idx)
        out = []
        for i, k in enumerate(slices):
            depth = ((k % max(per_slab - 6, 1)) + 1) * th
            vv = np.maximum(v[i], 8.0) * 10.0  # mm/s
            npulse = depth / (vv * tr / 1000.0)
            m = 1.3 * physics.inflow_factor(m_ss_art, art_m0, fa, tr, float(t.t1[CH["artery"]]), npulse)
            out.append(a[i] + f[i] * m)
        return out

    n = int(min(st.cols, 256))
    nr = int(min(st.rows, round(256 * st.rows / st.cols)))
    imgs_acq = render(st, st.keep, nr, n)
    o = AcqOpts(acq_r=nr, acq_c=n, snr=ctx.u(20, 35) * (1.6 if ctx.hi else 1.0), ref_level=wm_ref(s), field_t=ctx.field,
                filter=ctx.choice(["none", "hamming"]), bias=ctx.u(0.1, 0.3))
    bias = bias_field(rng, nr, n, o.bias)
    imgs = [reconstruct(im, (st.rows, st.cols), o, rng, bias) for im in imgs_acq]
    frames = [Frame(pixels=im, ipp=[float(v) for v in st.ipp(k)], iop=st.iop, instance=k + 1, slice_index=k)
              for k, im in zip(st.keep, imgs)]
    acq = dict(tr=tr, te=te, ti=None, fa=fa, etl=1, mr_type="3D", family="tof", fat_sat=False, pe_axis=0,
               pixel_bw=ctx.u(150, 250), n_partitions=n_total, slabs=n_slabs)
    out = [make_series("tof", "tof", st, frames, acq, acq_matrix=(n, nr))]
    if with_mip:
        out.append(_tof_mip(ctx, st, render, acq, o))
    return out


def _tof_mip(ctx: Ctx, st: SliceStack, render, acq, o) -> object:
    """Maximum-intensity projections of a coarse copy of the TOF slab."""
    rng = ctx.rng
    nb = 64
    n = 160
    step = max(1, st.n_slices // nb)
    slices = list(range(0, st.n_slices, step))[:nb]
    blk = np.stack(render(st, slices, n, n))  # (z, y, x)
    blk = blk + np.abs(rng.normal(0, o.ref_level / (o.snr * 0.7), blk.shape))
    mode = ctx.choice(["rotating", "single"], [0.65, 0.35])
    frames = []
    size = int(ctx.choice([256, 320, 384, 512]))
    fov = st.fov_c
    if mode == "rotating":
        n_proj = int(ctx.choice([12, 18, 24, 36]))
        axis_is = "si"
        angles = np.arange(n_proj) * (180.0 / n_proj)
        keep = even_subset(n_proj, min(n_proj, ctx.max_images))
        # expand slab thickness to in-plane pixel units so projections keep their aspect
        zscale = (step * st.spacing) / (fov / n)
        for j in keep:
            ang = angles[j]
            if axis_is == "si":
                rot = ndi.rotate(blk, ang, axes=(1, 2), reshape=False, order=1)
                proj = rot.max(axis=1)  # (z, x) -> coronal-like view for 0 deg
                proj = ndi.zoom(proj, (zscale, 1), order=1)[::-1]
                th = np.deg2rad(ang)
                row = np.cos(th) * st.row + np.sin(th) * st.col
                col = -st.normal
            else:
                rot = ndi.rotate(blk, ang, axes=(0, 1), reshape=False, order=1)
                proj = rot.max(axis=2)
                proj = ndi.zoom(proj, (zscale, 1), order=1)[::-1]
                th = np.deg2rad(ang)
                row = st.col
                col = -(np.cos(th) * st.normal + np.sin(th) * st.col)
            img = _fit(proj, size)
            centre = st.centre
            ps = fov / size
            ipp = centre - row * (size / 2 - 0.5) * ps - col * (size / 2 - 0.5) * ps
            frames.append(Frame(pixels=img, ipp=[float(v) for v in ipp], iop=[float(v) for v in np.concatenate([row, col])],
                                instance=j + 1, slice_index=j, image_tokens=("MIP",)))
        label = "rotating"
    else:
        which = ctx.choice(["tra", "cor", "sag"], [0.5, 0.3, 0.2])
        zscale = (step * st.spacing) / (fov / n)
        if which == "tra":
            img = blk.max(axis=0)
            row, col = st.row, st.col
        elif which == "cor":
            img = ndi.zoom(blk.max(axis=1), (zscale, 1), order=1)[::-1]
            row, col = st.row, -st.normal
        else:
            img = ndi.zoom(blk.max(axis=2), (zscale, 1), order=1)[::-1]
            row, col = st.col, -st.normal
        img = _fit(img, size)
        ps = fov / size
        ipp = st.centre - row * (size / 2 - 0.5) * ps - col * (size / 2 - 0.5) * ps
        frames.append(Frame(pixels=img, ipp=[float(v) for v in ipp], iop=[float(v) for v in np.concatenate([row, col])],
                            instance=1, slice_index=0, image_tokens=("MIP_" + which.upper(),)))
        label = "mip_" + which
    ps = fov / size
    mst = SliceStack(np.array(frames[0].iop[:3]), np.array(frames[0].iop[3:]), st.centre, size, size, fov, fov,
                     len(frames), ps * size, st.spacing * st.n_slices, list(range(len(frames))))
    return make_series("tof_mip", label, mst, frames, dict(acq), kind="MIP", derived=True, acq_matrix=(n, n))


def _fit(img, size):
    """Pad/crop to square then resize to ``size``."""
    h, w = img.shape
    m = max(h, w)
    canvas = np.zeros((m, m), np.float32)
    canvas[(m - h) // 2:(m - h) // 2 + h, (m - w) // 2:(m - w) // 2 + w] = img
    return ndi.zoom(canvas, size / m, order=1)[:size, :size]
