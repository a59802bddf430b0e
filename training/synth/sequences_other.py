"""Scouts (3-plane localizers, 3D AAHead scout with MPRs), non-head stand-ins and RGB screenshots."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import ndimage as ndi

from . import physics
from .anatomy import CH
from .geometry import AXES, SliceStack, plan_stack
from .imaging import AcqOpts, acquire, bias_field, reconstruct
from .sequences import Ctx, make_series, opts_for, plan, sig, wm_ref
from .series import Frame
from .subject import BRAIN_CENTRE_ANAT
from .tissues import TissueSet


def _scout_signal(ctx: Ctx, kind):
    t = ctx.subject.tissue_params(ctx.post)
    if kind == "gre":
        tr, te, fa = ctx.u(7, 10), ctx.u(3.5, 5), ctx.u(15, 25)
        return physics.spoiled_gre(t, tr, te, fa), dict(tr=tr, te=te, fa=fa, family="gre")
    if kind == "bssfp":
        tr = ctx.u(3.5, 5)
        return physics.bssfp(t, tr, ctx.u(40, 60)), dict(tr=tr, te=tr / 2, fa=50.0, family="bssfp")
    te = ctx.u(60, 90)
    return physics.spin_echo(t, 1e4, te), dict(tr=ctx.u(1000, 1500), te=te, fa=90.0, family="ssfse")


def make_scout(ctx: Ctx) -> list:
    rng = ctx.rng
    v = ctx.vendor
    if v == "Siemens" and rng.random() < 0.4:
        return make_aahead_scout(ctx)
    kind = {"Siemens": "gre", "GE": ctx.choice(["gre", "ssfse"], [0.7, 0.3]), "Philips": ctx.choice(["bssfp", "gre"], [0.6, 0.4]),
            "Canon": ctx.choice(["gre", "ssfse"])}[v]
    s, info = _scout_signal(ctx, kind)
    single = rng.random() < 0.12
    planes = [ctx.choice(["sagittal", "axial", "coronal"])] if single else ["sagittal", "coronal", "axial"]
    per = [int(rng.integers(1, 6)) if not single else int(rng.integers(3, 12)) for _ in planes]
    fov = round(ctx.u(250, 300))
    frames = []
    inst = 0
    th = round(ctx.u(5, 10), 1)
    matrix = 256
    rect = ctx.choice([1.0, 0.75, 0.5])
    stacks = []
    for plane, n in zip(planes, per):
        st = plan(ctx, plane, fov=fov, matrix=matrix, n_slices=n, spacing=th * ctx.u(1.0, 2.5), thickness=th,
                  centre=BRAIN_CENTRE_ANAT + np.array([0, 0, -ctx.u(0, 30)]), rect=rect, jitter=12.0, small_tilt=3.0)
        # scouts are planned before the head is known: drop the head alignment
        R = ctx.subject.pose_R
        st.row, st.col = R.T @ st.row, R.T @ st.col
        o = opts_for(ctx, st, res=ctx.u(1.6, 2.4), snr=10, ref=wm_ref(s), bias=ctx.u(0.3, 0.6))
        imgs = acquire(ctx.subject, st, [sig(ctx, s)], o, rng)[0]
        for k, im in zip(st.keep, imgs):
            inst += 1
            frames.append(Frame(pixels=im, ipp=[float(x) for x in st.ipp(k)], iop=st.iop, instance=inst, slice_index=inst - 1,
                                plane=plane))
        stacks.append(st)
    st0 = stacks[0]
    acq = dict(tr=info["tr"], te=info["te"], ti=None, fa=info["fa"], etl=1 if kind != "ssfse" else 128,
               mr_type="2D", family="scout_" + kind, fat_sat=False, pe_axis=0, pixel_bw=ctx.u(300, 600), planes=len(planes))
    return [make_series("scout", "3plane" if not single else "single", st0, frames, acq,
                        acq_matrix=(matrix // 2, int(matrix * rect) // 2))]


def make_aahead_scout(ctx: Ctx) -> list:
    """Siemens AAHead_Scout: a 1.6 mm 3D sagittal GRE plus MPR children (all scout)."""
    rng = ctx.rng
    t = ctx.subject.tissue_params(ctx.post)
    tr, te, fa = 3.15, 1.37, 8.0
    s = physics.spoiled_gre(t, tr, te, fa)
    st = plan(ctx, "sagittal", fov=260, matrix=160, n_slices=128, spacing=1.6, thickness=1.6, keep_n=int(rng.integers(6, 13)),
              centre=BRAIN_CENTRE_ANAT + np.array([0, 0, -15]), jitter=8, small_tilt=2.0)
    R = ctx.subject.pose_R
    st.row, st.col = R.T @ st.row, R.T @ st.col
    o = opts_for(ctx, st, res=1.6, snr=10, ref=wm_ref(s), bias=ctx.u(0.3, 0.5))
    vol = sig(ctx, s)
    imgs = acquire(ctx.subject, st, [vol], o, rng)[0]
    acq = dict(tr=tr, te=te, ti=None, fa=fa, etl=1, mr_type="3D", family="scout_3d", fat_sat=False, pe_axis=0,
               pixel_bw=ctx.u(500, 600), partial_fourier=True)
    from .sequences import frames_from
    out = [make_series("scout", "aahead", st, frames_from(st, imgs), acq, acq_matrix=(160, 160))]
    if rng.random() < 0.7:
        for plane in ("sagittal", "coronal", "axial"):
            if rng.random() < 0.25:
                continue
            m = plan(ctx, plane, fov=260, matrix=int(ctx.choice([256, 320])), n_slices=int(rng.integers(5, 12)),
                     spacing=ctx.u(5, 8), thickness=ctx.u(3, 6), centre=BRAIN_CENTRE_ANAT, jitter=4, small_tilt=6.0)
            om = opts_for(ctx, m, res=1.6, snr=10, ref=wm_ref(s), bias=ctx.u(0.3, 0.5))
            mi = acquire(ctx.subject, m, [vol], om, rng)[0]
            ser = make_series("scout", "mpr_" + plane[:3], m, frames_from(m, mi), dict(acq), derived=True,
                              acq_matrix=(160, 160), kind="MPR")
            out.append(ser)
    return out


# ----------------------------------------------------------------------------- non-head stand-ins

BODY_TISSUES = {
    # T1 (1.5T), T2, PD ; 3T T1 scaled x1.2
    "air": (1, 1, 0.0), "fat": (343, 58, 0.95), "marrow": (525, 49, 0.85), "muscle": (950, 35, 0.78),
    "bone": (250, 1, 0.05), "disc": (1100, 120, 0.9), "csf": (4300, 2000, 1.0), "cord": (800, 75, 0.7),
    "liver": (580, 45, 0.75), "spleen": (1060, 80, 0.8), "kidney": (1000, 85, 0.85), "cartilage": (1000, 35, 0.75),
    "fluid": (3000, 1200, 1.0), "skin": (600, 40, 0.7), "bowel": (900, 60, 0.6),
}
BT = list(BODY_TISSUES)


def _body_map(ctx: Ctx, region, n):
    """2D label fractions (len(BT), n, n) of a procedural body cross-section."""
    rng = ctx.rng
    yy, xx = np.mgrid[0:n, 0:n] / n * 2 - 1  # -1..1
    lab = np.zeros((len(BT), n, n), np.float32)

    def put(name, mask, val=1.0):
        m = mask.astype(np.float32) * val
        lab[:, :, :] *= (1 - m)[None]
        lab[BT.index(name)] += m

    if region == "spine":  # sagittal lumbar/cervical spine: anterior at left
        put("fat", np.abs(xx) < 0.95)
        put("muscle", (xx > 0.15) & (xx < 0.85))
        put("bowel", xx < -0.35)
        ax = -0.05 + 0.06 * np.sin(yy * 2.0)
        period = rng.uniform(0.22, 0.3)
        ph = rng.uniform(0, period)
        lev = np.mod(yy + ph, period) / period
        put("marrow", (np.abs(xx - ax + 0.22) < 0.14) & (lev > 0.2))
        put("disc", (np.abs(xx - ax + 0.22) < 0.12) & (lev <= 0.2))
        put("csf", np.abs(xx - ax - 0.02) < 0.07)
        put("cord", (np.abs(xx - ax - 0.02) < 0.035) & (yy < rng.uniform(0.0, 0.6)))
        put("marrow", (xx - ax > 0.11) & (xx - ax < 0.3) & (np.mod(yy + ph + 0.1, period) / period > 0.45), 0.7)
        put("skin", (np.abs(xx) > 0.93) & (np.abs(xx) < 0.97))
        put("air", np.abs(xx) >= 0.97)
    elif region == "knee":  # coronal/sagittal knee: femur above, tibia below the joint line
        r = rng.uniform(0.55, 0.7)
        wob = 0.04 * np.sin(yy * rng.uniform(3, 6) + rng.uniform(0, 6))
        limb = np.abs(xx + wob) < r + 0.12 - 0.08 * yy ** 2
        put("fat", limb)
        put("muscle", limb & (np.abs(xx + wob) > r - 0.2) & (np.abs(xx + wob) < r + 0.02))
        jl = rng.uniform(-0.05, 0.05)
        # femoral condyles: two rounded lobes; tibial plateau: a flared block
        fem = ((xx / (r - 0.15)) ** 2 + ((yy - jl + 0.55) / 0.62) ** 2 < 1) & (yy < jl - 0.02)
        for cx in (-0.22, 0.22):
            fem |= ((xx - cx * r) ** 2 / 0.05 + (yy - jl + 0.1) ** 2 / 0.02 < 1)
        tib = (np.abs(xx) < (r - 0.12) - 0.35 * np.clip(yy - jl - 0.15, 0, None)) & (yy > jl + 0.05)
        put("marrow", fem)
        put("marrow", tib)
        put("bone", (fem ^ ndi.binary_erosion(fem, iterations=2)) | (tib ^ ndi.binary_erosion(tib, iterations=2)))
        put("cartilage", ndi.binary_dilation(fem, iterations=3) & ~fem & (yy > jl - 0.25) & (np.abs(xx) < r - 0.1))
        put("cartilage", ndi.binary_dilation(tib, iterations=3) & ~tib & (yy < jl + 0.2) & (np.abs(xx) < r - 0.1))
        put("fluid", (np.abs(xx) < r - 0.2) & (np.abs(yy - jl + 0.02) < 0.018), 0.5)
        put("disc", ((xx / 0.25) ** 2 + ((yy - jl) / 0.04) ** 2 < 1) & (np.abs(xx) > 0.12), 0.8)  # menisci-ish
        put("skin", limb & ~ndi.binary_erosion(limb, iterations=2))
    else:  # abdomen axial: anterior up
        rx, ry = rng.uniform(0.8, 0.95), rng.uniform(0.6, 0.75)
        e = (xx / rx) ** 2 + (yy / ry) ** 2
        put("fat", e < 1)
        put("muscle", (e < 0.8) & (e > 0.62))
        put("bowel", e < 0.62)
        put("liver", ((xx + 0.25) ** 2 / 0.35 + (yy + 0.05) ** 2 / 0.2 < 1) & (e < 0.62))
        put("spleen", ((xx - 0.5) ** 2 / 0.03 + (yy - 0.15) ** 2 / 0.05 < 1))
        for sx in (-1, 1):
            put("kidney", ((xx - sx * 0.38) ** 2 / 0.012 + (yy - 0.3) ** 2 / 0.025 < 1))
        put("marrow", (xx ** 2 / 0.012 + (yy - 0.38) ** 2 / 0.01 < 1))
        put("csf", (xx ** 2 + (yy - 0.5) ** 2 < 0.002))
        put("fluid", (xx - 0.08) ** 2 + (yy - 0.22) ** 2 < 0.003)  # aorta (bright on bSSFP)
        put("skin", np.abs(e - 1.0) < 0.04)
        put("air", e >= 1.04)
    lab = ndi.gaussian_filter(lab, (0, 1.0, 1.0))
    return lab


def make_nonhead(ctx: Ctx) -> list:
    rng = ctx.rng
    region = ctx.choice(["spine", "knee", "abdomen"], [0.4, 0.3, 0.3])
    contrast = ctx.choice(["t1", "t2", "pdfs"], [0.35, 0.45, 0.2])
    arr = np.array([BODY_TISSUES[k] for k in BT], float)
    t1 = arr[:, 0] * (1.2 if ctx.hi else 1.0)
    t = TissueSet(tuple(BT), t1, arr[:, 1], arr[:, 1] * 0.6, arr[:, 2], np.zeros(len(BT)), np.zeros(len(BT)), np.zeros(len(BT)))
    if contrast == "t1":
        tr, te = ctx.u(400, 700), ctx.u(8, 15)
    elif contrast == "t2":
        tr, te = ctx.u(3000, 5000), ctx.u(80, 110)
    else:
        tr, te = ctx.u(2500, 4000), ctx.u(25, 40)
    s = physics.spin_echo(t, tr, te)
    if contrast == "pdfs":
        s[BT.index("fat")] *= 0.1
        s[BT.index("marrow")] *= 0.2
    plane = {"spine": "sagittal", "knee": ctx.choice(["coronal", "sagittal"]), "abdomen": ctx.choice(["axial", "coronal"])}[region]
    fov = {"spine": ctx.u(280, 360), "knee": ctx.u(140, 170), "abdomen": ctx.u(340, 420)}[region]
    n_sl = int(rng.integers(12, 30))
    th = ctx.u(3, 6)
    row, col = AXES[plane]
    centre = {"spine": np.array([0, 60, -450.0]), "knee": np.array([-90, 0, -1300.0]), "abdomen": np.array([0, 20, -350.0])}[region]
    st = SliceStack(row, col, centre + rng.normal(0, 10, 3), 256 if region != "abdomen" else int(ctx.choice([256, 320])),
                    256 if region != "abdomen" else int(ctx.choice([256, 320])), fov, fov, n_sl, th * 1.1, th,
                    [int(k) for k in np.linspace(0, n_sl - 1, min(n_sl, ctx.max_images)).round()])
    n = 192
    frames = []
    o = AcqOpts(acq_r=n, acq_c=n, snr=ctx.u(15, 40), ref_level=float(s[BT.index("muscle")]) + 0.05, field_t=ctx.field,
                bias=ctx.u(0.2, 0.5))
    bias = bias_field(rng, n, n, o.bias)
    base = _body_map(ctx, region, n)
    for k in st.keep:
        lab = ndi.shift(base, (0, rng.normal(0, 2), rng.normal(0, 2)), order=1, mode="nearest")
        img = np.tensordot(s.astype(np.float32), lab, axes=1)
        frames.append(Frame(pixels=reconstruct(img, (st.rows, st.cols), o, rng, bias), ipp=[float(v) for v in st.ipp(k)],
                            iop=st.iop, instance=k + 1, slice_index=k))
    acq = dict(tr=tr, te=te, ti=None, fa=90.0, etl=int(rng.integers(1, 20)), mr_type="2D", family="nonhead",
               fat_sat=contrast == "pdfs", pe_axis=0, pixel_bw=ctx.u(150, 300), region=region)
    return [make_series("other", "nonhead_" + region, st, frames, acq, acq_matrix=(n, n), fat_sat=contrast == "pdfs")]


def make_screenshot(ctx: Ctx) -> list:
    """RGB secondary capture: a rendered head slice with coloured overlays/annotations."""
    rng = ctx.rng
    t = ctx.subject.tissue_params(ctx.post)
    s = physics.spin_echo(t, ctx.u(400, 6000), ctx.u(10, 100))
    st = plan(ctx, ctx.choice(["axial", "sagittal", "coronal"]), fov=230, matrix=256, n_slices=3, spacing=5, thickness=5)
    o = opts_for(ctx, st, res=1.2, snr=30, ref=wm_ref(s))
    imgs = acquire(ctx.subject, st, [sig(ctx, s)], o, rng)[0]
    size = int(ctx.choice([512, 600, 768]))
    frames = []
    n_img = int(rng.integers(1, 4))
    for j in range(n_img):
        canvas = np.zeros((size, size, 3), np.float32)
        panels = int(ctx.choice([1, 2, 4]))
        g = int(np.ceil(np.sqrt(panels)))
        ps = size // g
        for p in range(panels):
            im = imgs[(j + p) % len(imgs)]
            im = im / (np.percentile(im, 99.5) + 1e-6)
            im = ndi.zoom(im, ps / im.shape[0], order=1)[:ps, :ps]
            rgb = np.repeat(im[..., None], 3, -1)
            if rng.random() < 0.7:  # colour overlay (perfusion/fMRI-like map)
                m = ndi.gaussian_filter(rng.standard_normal(im.shape), ps / 20)
                m = np.clip((m - 0.3) * 3, 0, 1) * (im > 0.2)
                col = np.stack([m, np.clip(1 - np.abs(m - 0.5) * 2, 0, 1) * m, 1 - m], -1) * (m[..., None] > 0)
                rgb = rgb * (1 - 0.6 * (m[..., None] > 0)) + 0.6 * col
            r0, c0 = (p // g) * ps, (p % g) * ps
            canvas[r0:r0 + rgb.shape[0], c0:c0 + rgb.shape[1]] = rgb
        # annotation "text" bars and a colour bar
        for _ in range(int(rng.integers(3, 10))):
            r = int(rng.integers(0, size - 8))
            c = int(rng.integers(0, size - 80))
            w = int(rng.integers(20, 120))
            canvas[r:r + 6, c:c + w] = rng.choice([1.0, 0.9]) * np.array(ctx.choice([[1, 1, 1], [1, 1, 0], [0, 1, 0]]))
        if rng.random() < 0.6:
            bar = np.linspace(1, 0, size // 2)
            canvas[size // 4:size // 4 + size // 2, size - 20:size - 8] = np.stack([bar, 1 - np.abs(bar - 0.5) * 2, 1 - bar], -1)[:, None, :]
        frames.append(Frame(pixels=(np.clip(canvas, 0, 1) * 255).astype(np.uint8), ipp=None, iop=None, instance=j + 1,
                            slice_index=j))
    acq = dict(tr=None, te=None, ti=None, fa=None, etl=None, mr_type=None, family="screenshot", fat_sat=False, pe_axis=0,
               pixel_bw=None)
    ser = make_series("other", "screenshot", st, frames, acq, kind="RGB", derived=True)
    ser.pixel_spacing = None
    ser.thickness = None
    ser.spacing = None
    return [ser]
