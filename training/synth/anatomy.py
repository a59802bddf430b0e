"""Head phantom: tissue fraction maps built from nilearn's bundled MNI152 files.

The MNI152 2009a T1, GM and WM probability maps that ship inside the nilearn
wheel (``nilearn/datasets/data``) give the brain.  Everything else is derived
or added procedurally:

* intracranial volume (ICV) from the skull-stripped T1, closed and dilated;
  CSF = ICV - GM - WM (ventricles and subarachnoid space);
* shells outward from the ICV by distance transform with smoothly varying
  thickness: dura (enhancing), inner table, diploe (marrow), outer table,
  galea/temporalis muscle, subcutaneous fat, skin;
* face (orbits with globes and fat, nasal cavity, paranasal sinuses with
  enhancing mucosa, mandible, tongue, nose), neck (spinal cord, vertebrae,
  discs, airway, muscle, fat), petrous bone with internal auditory canals
  and labyrinth;
* arteries (ICA, MCA with random M2-M4 branches, ACA, vertebrobasilar, PCA)
  with a velocity map for TOF inflow, and veins (dural sinuses, deep and
  cortical veins, medullary veins) for SWI; choroid plexus, pituitary and
  cavernous sinus as contrast-enhancing structures.

The phantom lives on a 1.5 mm isotropic grid in MNI (RAS) millimetres.  It is
built once per process (about 10 s) and cached on disk next to the nilearn
files' hash; every study then deforms and re-parameterises it at sampling
time (see :mod:`training.synth.subject`).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

VOXEL_MM = 1.5
# grid extent in MNI RAS mm (inclusive lower corner); covers head, face and neck
ORIGIN = np.array([-102.0, -142.0, -136.0])
SHAPE = (136, 170, 166)

CHANNELS = ("wm", "gm", "csf", "fat", "marrow", "muscle", "bone", "skin",
            "artery", "vein", "enh", "disc", "vitreous")
CH = {name: i for i, name in enumerate(CHANNELS)}
CACHE_VERSION = "phantom-v3"


def nilearn_data_dir() -> str:
    """Directory holding the MNI152 files inside the installed nilearn package."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or spec.origin is None:
        raise RuntimeError("nilearn is not installed (pip install -r training/requirements.txt)")
    return os.path.join(os.path.dirname(spec.origin), "datasets", "data")


def _mni_file(kind: str) -> str:
    return os.path.join(nilearn_data_dir(), f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz")


@dataclass
class Phantom:
    """Tissue fractions (C, X, Y, Z) float32 plus an arterial velocity map (cm/s)."""

    frac: np.ndarray
    art_velocity: np.ndarray
    field_ppm: np.ndarray  # B0 offset from susceptibility (air, bone, veins), ppm
    voxel: float = VOXEL_MM

    @property
    def origin(self) -> np.ndarray:
        return ORIGIN

    def channel(self, name: str) -> np.ndarray:
        return self.frac[CH[name]]

    def world_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """MNI mm (…, 3) -> fractional voxel indices (…, 3)."""
        return (xyz - self.origin) / self.voxel

    @property
    def coords(self):
        """Open grids of the voxel centres in mm (x, y, z)."""
        return [self.origin[i] + self.voxel * np.arange(SHAPE[i]) for i in range(3)]


# ----------------------------------------------------------------------------- helpers

def _grid():
    xs, ys, zs = [ORIGIN[i] + VOXEL_MM * np.arange(SHAPE[i]) for i in range(3)]
    return np.meshgrid(xs, ys, zs, indexing="ij", sparse=True)


def _ellipsoid(X, Y, Z, c, r, soft=1.0):
    """Soft ellipsoid indicator (0..1) with an edge of ``soft`` mm."""
    d = np.sqrt(((X - c[0]) / r[0]) ** 2 + ((Y - c[1]) / r[1]) ** 2 + ((Z - c[2]) / r[2]) ** 2)
    rm = min(r)
    return np.clip((1.0 - d) * rm / soft + 0.5, 0.0, 1.0).astype(np.float32)


def _segment_distance(P, a, b):
    """Distance of points P (N,3) from segment a-b."""
    ab = b - a
    t = np.clip(((P - a) @ ab) / max(ab @ ab, 1e-9), 0.0, 1.0)
    return np.linalg.norm(P - (a + t[:, None] * ab), axis=1)


def rasterise_tube(vol, pts, radii, value=1.0, vel=None, velocity=0.0):
    """Add a tube through polyline ``pts`` (mm) with per-point radii into ``vol``.

    Partial volume from the distance to the centreline; ``vel`` (optional) gets
    ``velocity`` where the tube occupies a voxel.
    """
    pts = np.asarray(pts, float)
    radii = np.broadcast_to(np.asarray(radii, float), (len(pts),))
    for i in range(len(pts) - 1):
        a, b = pts[i], pts[i + 1]
        r = max(radii[i], radii[i + 1])
        lo = np.floor((np.minimum(a, b) - r - 2 - ORIGIN) / VOXEL_MM).astype(int)
        hi = np.ceil((np.maximum(a, b) + r + 2 - ORIGIN) / VOXEL_MM).astype(int) + 1
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, SHAPE)
        if np.any(hi <= lo):
            continue
        ii = [np.arange(lo[k], hi[k]) for k in range(3)]
        g = np.stack(np.meshgrid(*ii, indexing="ij"), -1).reshape(-1, 3)
        P = ORIGIN + VOXEL_MM * g
        d = _segment_distance(P, a, b)
        ab = b - a
        t = np.clip(((P - a) @ ab) / max(ab @ ab, 1e-9), 0, 1)
        rr = radii[i] + t * (radii[i + 1] - radii[i])
        f = np.clip((rr - d) / VOXEL_MM + 0.5, 0, 1).astype(np.float32) * value
        sub = vol[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        fr = f.reshape(sub.shape)
        np.maximum(sub, fr, out=sub)
        if vel is not None:
            vs = vel[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            vs[fr > 0.3] = np.maximum(vs[fr > 0.3], velocity)


def _smooth_noise(rng, shape, scale_vox, amp):
    n = rng.standard_normal(shape).astype(np.float32)
    n = ndi.gaussian_filter(n, scale_vox)
    n /= n.std() + 1e-6
    return n * amp


def _branch(rng, start, direction, length, radius, n_seg, curl=0.35, bias=None):
    """Random tortuous polyline from ``start``; returns points and radii."""
    pts = [np.asarray(start, float)]
    d = np.asarray(direction, float)
    d /= np.linalg.norm(d)
    step = length / n_seg
    for _ in range(n_seg):
        d = d + curl * rng.standard_normal(3)
        if bias is not None:
            d = d + bias
        d /= np.linalg.norm(d)
        pts.append(pts[-1] + step * d)
    radii = np.linspace(radius, radius * 0.55, len(pts))
    return np.array(pts), radii


# ----------------------------------------------------------------------------- build

def _load_brain():
    import nibabel as nib

    imgs = {k: nib.load(_mni_file(k)) for k in ("t1", "gm", "wm")}
    aff = imgs["t1"].affine
    X, Y, Z = _grid()
    # sample the 1 mm maps on our 1.5 mm grid (trilinear)
    ijk = [np.asarray(v - aff[i, 3]) / aff[i, i] for i, v in enumerate((X, Y, Z))]
    coords = np.broadcast_arrays(*ijk)
    out = {}
    for k, im in imgs.items():
        a = np.asarray(im.dataobj, dtype=np.float32)
        if k != "t1":
            a = a / 255.0
        out[k] = ndi.map_coordinates(a, coords, order=1, mode="constant", cval=0.0).astype(np.float32)
    return out


def build_phantom(seed: int = 1234) -> Phantom:
    """Construct the full-head phantom (deterministic for ``seed``)."""
    rng = np.random.default_rng(seed)
    X, Y, Z = _grid()
    brain = _load_brain()
    gm, wm, t1 = brain["gm"], brain["wm"], brain["t1"]
    frac = np.zeros((len(CHANNELS),) + SHAPE, np.float32)
    vel = np.zeros(SHAPE, np.float32)

    # --- brain, ICV, CSF -----------------------------------------------------------
    bmask = ndi.binary_fill_holes(t1 > 20)
    # spinal cord continuation below the template's crop (z < -72)
    cord_c = np.array([0.0, -45.0])
    cord = ((X - cord_c[0]) ** 2 / 5.5 ** 2 + (Y - (cord_c[1] + 0.12 * (Z + 72))) ** 2 / 6.0 ** 2 <= 1) & (Z < -66)
    bmask |= cord
    wm = np.where(cord, 1.0, wm).astype(np.float32)
    icv = ndi.binary_closing(bmask, iterations=3)
    icv = ndi.binary_dilation(icv, iterations=2)  # +3 mm subarachnoid CSF
    csf_canal = ((X - cord_c[0]) ** 2 / 10 ** 2 + (Y - (cord_c[1] + 0.12 * (Z + 72))) ** 2 / 10 ** 2 <= 1) & (Z < -60)
    icv |= csf_canal
    icv_f = ndi.gaussian_filter(icv.astype(np.float32), 0.6)
    wm = np.minimum(wm, icv_f)
    gm = np.minimum(gm, np.clip(icv_f - wm, 0, 1))
    csf = np.clip(icv_f - gm - wm, 0, 1)
    frac[CH["wm"]], frac[CH["gm"]], frac[CH["csf"]] = wm, gm, csf

    # distance from the ICV outward (mm), with smoothly varying shell thickness
    d_icv = ndi.distance_transform_edt(~icv, sampling=VOXEL_MM).astype(np.float32)
    wobble = 1.0 + _smooth_noise(rng, SHAPE, 8, 0.15)

    # --- body outline: head shell, face, neck, nose --------------------------------
    head = d_icv < 13.5 * wobble
    face = _ellipsoid(X, Y, Z, (0, 40, -62), (58, 58, 44), 2.0) > 0.5
    face &= (Y > -5) | (Z > -95)
    neck = ((X / 58.0) ** 2 + ((Y + 20) / 62.0) ** 2 <= 1) & (Z < -55)
    jaw = _ellipsoid(X, Y, Z, (0, 45, -95), (48, 45, 22), 2.0) > 0.5
    nose = (np.abs(X) < 12 - 0.25 * np.clip(Y - 85, 0, None)) & (Y > 60) & (Y < 100 - 0.35 * np.clip(-40 - Z, 0, None)) & (Z < -35) & (Z > -78)
    body = head | face | neck | jaw | nose
    body = ndi.binary_closing(body, iterations=3)
    body = ndi.binary_fill_holes(body)
    d_out = ndi.distance_transform_edt(body, sampling=VOXEL_MM).astype(np.float32)

    interior = body & ~icv
    # default soft tissue inside the body (neck / face): muscle with some fat
    muscle = np.where(interior, 0.75, 0.0).astype(np.float32)
    fat = np.where(interior, 0.25, 0.0).astype(np.float32)
    marrow = np.zeros(SHAPE, np.float32)
    bone = np.zeros(SHAPE, np.float32)
    enh = np.zeros(SHAPE, np.float32)

    # skull layers where the head shell is
    shell = interior & (d_icv < 13.5 * wobble)
    dd = d_icv / wobble
    inner = shell & (dd >= 1.0) & (dd < 2.8)
    dipl = shell & (dd >= 2.8) & (dd < 5.0)
    outer = shell & (dd >= 5.0) & (dd < 6.6)
    for m in (inner, dipl, outer):
        muscle[m] = 0
        fat[m] = 0
    bone[inner | outer] = 1.0
    marrow[dipl] = 0.85
    bone[dipl] = 0.15
    dura = shell & (dd < 1.0)
    muscle[dura], fat[dura] = 0.0, 0.0
    enh[dura] = 0.6
    bone[dura] = 0.4
    galea = shell & (dd >= 6.6)
    muscle[galea], fat[galea] = 0.35, 0.65
    # temporalis muscle laterally
    temporalis = galea & (np.abs(X) > 45) & (Z > -40) & (Z < 25) & (Y > -50) & (Y < 30)
    muscle[temporalis], fat[temporalis] = 0.9, 0.1

    # --- face and skull base structures --------------------------------------------
    face_region = interior & (d_icv >= 1.0) & ~shell
    # facial skeleton / maxilla: marrow-rich bone mixed with muscle
    maxilla = face_region & (Z > -90) & (Y > 20)
    marrow[maxilla] += 0.25
    bone[maxilla] += 0.15
    muscle[maxilla] -= 0.4
    # mandible U
    rmand = np.sqrt(X ** 2 + ((Y - 20) * 1.2) ** 2)
    mand = face_region & (np.abs(rmand - 48) < 4.5) & (Z < -82) & (Z > -108) & (Y > 0)
    bone[mand], marrow[mand], muscle[mand], fat[mand] = 0.45, 0.55, 0, 0
    # skull base (clivus, sphenoid body, petrous ridges): bone/marrow
    sb = interior & ~shell & (Z > -75) & (Z < -20) & (Y > -60) & (Y < 30) & (np.abs(X) < 60)
    bone[sb], marrow[sb], muscle[sb], fat[sb] = 0.55, 0.45, 0.0, 0.0

    air = np.zeros(SHAPE, np.float32)
    mucosa = np.zeros(SHAPE, np.float32)

    def cavity(c, r, lining=2.0):
        e = _ellipsoid(X, Y, Z, c, r, 1.0)
        e *= (d_icv > 1.5)
        big = _ellipsoid(X, Y, Z, c, [v + lining for v in r], 1.0) * (d_icv > 1.0)
        air[...] = np.maximum(air, e)
        mucosa[...] = np.maximum(mucosa, np.clip(big - e, 0, 1))

    for sx in (-1, 1):
        cavity((sx * 27, 45, -64), (13, 17, 16))           # maxillary sinus
        cavity((sx * 40, -22, -48), (8, 9, 8), 1.0)        # mastoid air cells
        cavity((sx * 12, 48, -30), (5, 9, 7), 1.0)         # ethmoid cells
    cavity((0, 18, -42), (12, 11, 9))                       # sphenoid sinus
    cavity((0, 66, 2), (13, 6, 10))                         # frontal sinus
    nasal = (np.abs(X) < 9) & (Y > 35) & (Y < 92) & (Z > -82) & (Z < -40) & body & (d_out > 3)
    air[nasal] = 1.0
    mucosa_n = ndi.binary_dilation(nasal, iterations=1) & ~nasal
    mucosa[mucosa_n] = 1.0
    airway = (X ** 2 / 9 ** 2 + (Y - 5) ** 2 / 7 ** 2 <= 1) & (Z < -78) & (Z > -136)
    air[airway & body] = 1.0
    oral = _ellipsoid(X, Y, Z, (0, 45, -88), (22, 25, 6), 1.0) > 0.5
    air[oral & body] = 0.7
    tongue = _ellipsoid(X, Y, Z, (0, 40, -100), (22, 28, 10), 1.5)
    muscle = np.maximum(muscle, tongue * body)

    # orbits: fat cone, globe (vitreous), lens, optic nerve, extra-ocular muscles
    vitreous = np.zeros(SHAPE, np.float32)
    for sx in (-1, 1):
        orb = _ellipsoid(X, Y, Z, (sx * 31, 45, -34), (17, 22, 16), 1.5) * (d_icv > 1.0)
        fat = np.maximum(fat, orb)
        muscle = np.where(orb > 0.5, 0.0, muscle)
        bone = np.where(orb > 0.5, 0.0, bone)
        marrow = np.where(orb > 0.5, 0.0, marrow)
        air = np.where(orb > 0.5, 0.0, air)
        mucosa = np.where(orb > 0.5, 0.0, mucosa)
        glob = _ellipsoid(X, Y, Z, (sx * 32, 57, -34), (11.5, 11.5, 11.5), 1.0)
        vitreous = np.maximum(vitreous, glob)
        lens = _ellipsoid(X, Y, Z, (sx * 32, 67, -34), (4.5, 2.0, 4.5), 0.8)
        vitreous = np.maximum(vitreous - lens, 0)
        muscle = np.maximum(muscle, lens)
        for mx, mz in ((0, 9), (0, -9), (9, 0), (-9, 0)):
            rasterise_tube(muscle, [(sx * 31 + mx * sx, 52, -34 + mz), (sx * 25 + 0.3 * mx, 28, -32 + 0.3 * mz)], 1.8)
        rasterise_tube(muscle, [(sx * 31, 46, -34), (sx * 16, 15, -30)], 2.0)  # optic nerve

    # petrous bone, internal auditory canal, labyrinth
    for sx in (-1, 1):
        pet = np.zeros(SHAPE, np.float32)
        rasterise_tube(pet, [(sx * 14, -12, -40), (sx * 30, -22, -38), (sx * 46, -34, -36)], 9.0)
        pet *= (~icv)
        bone = np.maximum(bone, pet * 0.8)
        marrow = np.where(pet > 0.5, 0.2, marrow)
        muscle = np.where(pet > 0.5, 0.0, muscle)
        fat = np.where(pet > 0.5, 0.0, fat)
        iac = np.zeros(SHAPE, np.float32)
        rasterise_tube(iac, [(sx * 12, -24, -34), (sx * 22, -23, -34.5), (sx * 31, -22, -35)], 2.2)
        laby = np.zeros(SHAPE, np.float32)
        laby = np.maximum(laby, _ellipsoid(X, Y, Z, (sx * 32, -14, -38), (3.2, 3.2, 2.6), 0.6))  # cochlea
        laby = np.maximum(laby, _ellipsoid(X, Y, Z, (sx * 35, -22, -35), (2.5, 2.5, 2.5), 0.6))  # vestibule
        th = np.linspace(0, 2 * np.pi, 16)
        for ax in range(3):
            ring = np.zeros((16, 3))
            ring[:, ax] = 0
            ring[:, (ax + 1) % 3] = 3.2 * np.cos(th)
            ring[:, (ax + 2) % 3] = 3.2 * np.sin(th)
            ring += np.array([sx * 38, -25, -31])
            rasterise_tube(laby, ring, 0.7)
        fluid = np.maximum(iac, laby)
        for arr in (bone, marrow, muscle, fat):
            arr *= (1 - fluid)
        vitreous = np.maximum(vitreous, fluid)  # inner-ear fluid ~ CSF; stored with the globes
        # CN VII/VIII inside the canal
        rasterise_tube(muscle, [(sx * 12, -24, -34), (sx * 30, -22, -35)], 0.8)

    # --- neck: vertebrae, discs, cord canal handled with ICV, airway done ------------
    disc = np.zeros(SHAPE, np.float32)
    neck_in = interior & (Z < -70)
    vb_c = (0.0, -22.0)
    vb = (X ** 2 / 11 ** 2 + (Y - vb_c[1] - 0.1 * (Z + 70)) ** 2 / 9 ** 2 <= 1) & neck_in
    level = np.mod(Z + 200.0, 17.0)
    is_disc = vb & (level < 4.0)
    is_body = vb & ~is_disc
    marrow[is_body], bone[is_body], muscle[is_body], fat[is_body] = 0.8, 0.2, 0, 0
    disc[is_disc] = 1.0
    muscle[is_disc], fat[is_disc] = 0, 0
    post_el = neck_in & (np.abs(X) < 14) & (Y < -52) & (Y > -68) & (level > 5)
    marrow[post_el], bone[post_el], muscle[post_el] = 0.6, 0.4, 0

    # --- subcutaneous fat and skin from the body surface ----------------------------
    fat_th = 4.0 + 1.5 * wobble
    skin_m = body & (d_out < 1.8)
    sub = body & (d_out >= 1.8) & (d_out < 1.8 + fat_th) & ~icv & (vitreous < 0.5) & (air < 0.5)
    fat[sub], muscle[sub], bone[sub], marrow[sub] = 1.0, 0.0, 0.0, 0.0
    skin = np.zeros(SHAPE, np.float32)
    skin[skin_m] = 1.0
    for arr in (fat, muscle, bone, marrow, air, mucosa):
        arr[skin_m] = 0

    # --- vessels -----------------------------------------------------------------
    art = np.zeros(SHAPE, np.float32)
    vein = np.zeros(SHAPE, np.float32)
    for sx in (-1, 1):
        ica = [(sx * 22, -12, -136), (sx * 21, -8, -90), (sx * 20, -6, -62), (sx * 18, 0, -44),
               (sx * 16, 6, -34), (sx * 15, 10, -24), (sx * 14, 4, -18), (sx * 12, 2, -14)]
        rasterise_tube(art, ica, 2.3, vel=vel, velocity=50)
        m1 = [(sx * 12, 2, -14), (sx * 22, 3, -13), (sx * 32, 4, -10), (sx * 40, 2, -5)]
        rasterise_tube(art, m1, [1.5, 1.4, 1.3, 1.2], vel=vel, velocity=45)
        a1 = [(sx * 12, 2, -14), (sx * 6, 10, -11), (sx * 1.5, 16, -8)]
        rasterise_tube(art, a1, 1.0, vel=vel, velocity=40)
        a2 = [(sx * 1.5, 16, -8), (sx * 1.5, 30, 4), (sx * 1.5, 36, 18), (sx * 1.5, 22, 32),
              (sx * 1.5, -5, 38), (sx * 1.5, -35, 36), (sx * 1.5, -55, 30)]
        rasterise_tube(art, a2, np.linspace(1.1, 0.7, len(a2)), vel=vel, velocity=30)
        va = [(sx * 26, -28, -136), (sx * 24, -30, -95), (sx * 20, -34, -75), (sx * 8, -32, -62), (0, -28, -52)]
        rasterise_tube(art, va, 1.7, vel=vel, velocity=40)
        pca = [(0, -16, -26), (sx * 8, -18, -22), (sx * 20, -28, -12), (sx * 26, -55, -6), (sx * 18, -85, 2)]
        rasterise_tube(art, pca, np.linspace(1.1, 0.7, len(pca)), vel=vel, velocity=35)
        pcom = [(sx * 13, -1, -16), (sx * 10, -14, -21)]
        rasterise_tube(art, pcom, 0.6, vel=vel, velocity=20)
        sca = [(0, -20, -32), (sx * 12, -32, -30), (sx * 22, -50, -28), (sx * 20, -70, -30)]
        rasterise_tube(art, sca, 0.7, vel=vel, velocity=25)
        # M2-M4 branches fanning out over the insula to the convexity
        for k in range(7):
            start = np.array([sx * 40, 2, -5]) + rng.normal(0, 1.5, 3)
            direction = np.array([sx * 0.35, rng.uniform(-1, 1), rng.uniform(0.2, 1.0)])
            pts, rr = _branch(rng, start, direction, rng.uniform(45, 75), 1.0, 10, 0.3,
                              bias=np.array([sx * 0.15, 0, 0.05]))
            rasterise_tube(art, pts, rr, vel=vel, velocity=25)
            for j in (4, 7):
                p2, r2 = _branch(rng, pts[j], pts[j] - pts[j - 1] + rng.normal(0, 2, 3), 25, rr[j] * 0.7, 5, 0.4)
                rasterise_tube(art, p2, r2, vel=vel, velocity=15)
        for k in range(3):  # callosomarginal / frontal branches
            j = 2 + k
            start = np.array(a2[j], float)
            pts, rr = _branch(rng, start, (sx * 0.15, rng.uniform(-0.5, 0.8), 1.0), 35, 0.8, 6, 0.3)
            rasterise_tube(art, pts, rr, vel=vel, velocity=15)
    basilar = [(0, -28, -52), (0, -22, -38), (0, -18, -28), (0, -16, -26)]
    rasterise_tube(art, basilar, 1.6, vel=vel, velocity=40)

    # veins: superior sagittal sinus along the inner table in the midline
    xs, ys, zs = [ORIGIN[i] + VOXEL_MM * np.arange(SHAPE[i]) for i in range(3)]
    ix0 = int(round((0 - ORIGIN[0]) / VOXEL_MM))
    mid = icv[ix0]
    cy, cz = np.nonzero(mid)
    sss = []
    for ang in np.linspace(np.deg2rad(20), np.deg2rad(185), 26):  # from frontal round to occipital
        dirv = np.array([np.cos(ang), np.sin(ang)])  # (y, z)
        centre = np.array([-15.0, 0.0])
        r = 40.0
        while True:
            p = centre + r * dirv
            iy = int(round((p[0] - ORIGIN[1]) / VOXEL_MM))
            iz = int(round((p[1] - ORIGIN[2]) / VOXEL_MM))
            if iy < 0 or iz < 0 or iy >= SHAPE[1] or iz >= SHAPE[2] or not mid[iy, iz]:
                break
            r += 1.0
        p = centre + (r - 3.5) * dirv
        if p[1] > -8:
            sss.append((0.0, p[0], p[1]))
    sss.append((0.0, -100.0, -6.0))
    rasterise_tube(vein, sss, np.linspace(2.0, 4.0, len(sss)))
    rasterise_tube(vein, [(0, -48, 6), (0, -75, 2), (0, -100, -6)], 2.2)               # straight sinus
    for sx in (-1, 1):
        rasterise_tube(vein, [(0, -100, -6), (sx * 25, -96, -12), (sx * 42, -78, -22), (sx * 46, -58, -32),
                              (sx * 42, -45, -42), (sx * 36, -38, -55), (sx * 30, -22, -75), (sx * 28, -18, -136)],
                       [3.2, 3.5, 3.5, 3.3, 3.0, 3.2, 4.5, 5.0])                       # transverse-sigmoid-IJV
        rasterise_tube(vein, [(sx * 3, -8, 16), (sx * 3, -30, 13), (sx * 1, -48, 6)], 1.1)  # internal cerebral
        rasterise_tube(vein, [(sx * 12, 6, -30), (sx * 14, -8, -32)], 2.5)             # cavernous sinus
        enh = np.maximum(enh, np.zeros(SHAPE, np.float32))
    # cortical veins draining to the SSS
    for k in range(18):
        j = rng.integers(2, len(sss) - 3)
        tgt = np.array(sss[j])
        sx = rng.choice([-1, 1])
        start = tgt + np.array([sx * rng.uniform(30, 55), rng.uniform(-15, 15), -rng.uniform(20, 45)])
        pts, rr = _branch(rng, start, tgt - start, np.linalg.norm(tgt - start), 1.0, 8, 0.15)
        rr = rr[::-1] * 1.2
        rasterise_tube(vein, pts, rr)
    # medullary veins: thin radial lines from the ventricles
    for k in range(60):
        sx = rng.choice([-1, 1])
        a = np.array([sx * rng.uniform(8, 20), rng.uniform(-40, 20), rng.uniform(5, 25)])
        dirv = np.array([sx * rng.uniform(0.5, 1), rng.uniform(-0.4, 0.4), rng.uniform(0, 0.8)])
        dirv /= np.linalg.norm(dirv)
        rasterise_tube(vein, [a, a + dirv * rng.uniform(15, 30)], 0.45)
    vein *= np.clip(body.astype(np.float32), 0, 1)
    vein = np.clip(vein - art, 0, 1)

    # enhancing non-BBB structures: choroid plexus, pituitary, dura (done), mucosa
    for sx in (-1, 1):
        chp = np.zeros(SHAPE, np.float32)
        rasterise_tube(chp, [(sx * 12, -5, 14), (sx * 20, -30, 14), (sx * 27, -40, 8), (sx * 30, -30, -8)], 2.2)
        enh = np.maximum(enh, chp * csf)
    enh = np.maximum(enh, _ellipsoid(X, Y, Z, (0, 3, -30), (5, 4.5, 3.5), 0.8) * (1 - icv_f * 0.0))
    enh = np.maximum(enh, mucosa)

    # --- normalise: each voxel's fractions sum to <= 1 (rest is air) ----------------
    frac[CH["fat"]] = fat
    frac[CH["marrow"]] = marrow
    frac[CH["muscle"]] = np.clip(muscle, 0, 1)
    frac[CH["bone"]] = np.clip(bone, 0, 1)
    frac[CH["skin"]] = skin
    frac[CH["disc"]] = disc
    frac[CH["vitreous"]] = vitreous * (~icv)
    # air cavities remove soft tissue
    keep = 1.0 - np.clip(air, 0, 1)
    for name in ("fat", "marrow", "muscle", "bone", "disc"):
        frac[CH[name]] *= keep
    frac[CH["enh"]] = np.clip(enh, 0, 1)
    # vessels displace other tissue
    vessel = np.clip(art + vein, 0, 1)
    frac *= (1.0 - vessel)[None]
    frac[CH["artery"]] = art
    frac[CH["vein"]] = vein
    # enhancing tissue is carried as its own compartment; remove it from the others
    e = frac[CH["enh"]]
    other = frac.sum(0) - e
    scale = np.where(other > 1e-6, np.clip((1.0 - e) / np.maximum(other, 1e-6), 0, 1), 0)
    for i, name in enumerate(CHANNELS):
        if name != "enh":
            frac[i] *= np.minimum(scale, 1.0)
    total = frac.sum(0)
    frac /= np.maximum(total, 1.0)[None]
    frac *= (body | icv)[None]
    vel *= (art > 0.2)
    field = susceptibility_field(frac)
    return Phantom(frac.astype(np.float32), vel.astype(np.float32), field)


def susceptibility_field(frac: np.ndarray, pad: int = 24) -> np.ndarray:
    """B0 offset (ppm) from the susceptibility map by the dipole kernel (B0 along z)."""
    from .tissues import TABLE

    chi = 9.4 * np.clip(1.0 - frac.sum(0), 0, 1)
    for i, name in enumerate(CHANNELS):
        chi += frac[i] * TABLE[name][8]
    chi = np.pad(chi.astype(np.float32), pad, mode="edge")
    k = [np.fft.fftfreq(n) for n in chi.shape]
    kx, ky, kz = np.meshgrid(*k, indexing="ij", sparse=True)
    k2 = kx ** 2 + ky ** 2 + kz ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        kern = np.where(k2 > 0, 1.0 / 3.0 - kz ** 2 / k2, 0.0).astype(np.float32)
    f = np.fft.ifftn(np.fft.fftn(chi) * kern).real.astype(np.float32)
    f = f[pad:-pad, pad:-pad, pad:-pad]
    return f - np.median(f[frac[CH["wm"]] > 0.5])


def _cache_path() -> str:
    h = hashlib.sha256()
    for k in ("t1", "gm", "wm"):
        h.update(str(os.path.getsize(_mni_file(k))).encode())
    src = open(__file__, "rb").read()
    h.update(src)
    base = os.environ.get("MRSORT_SYNTH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "mrsort-synth")
    return os.path.join(base, f"{CACHE_VERSION}-{h.hexdigest()[:12]}.npz")


_PHANTOM: Phantom | None = None


def get_phantom() -> Phantom:
    """The process-wide phantom (built once, cached on disk)."""
    global _PHANTOM
    if _PHANTOM is not None:
        return _PHANTOM
    path = _cache_path()
    if os.path.exists(path):
        try:
            z = np.load(path)
            _PHANTOM = Phantom(z["frac"], z["vel"], z["field"])
            return _PHANTOM
        except Exception:  # corrupt cache: rebuild
            pass
    ph = build_phantom()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + f".{os.getpid()}.tmp.npz"
        np.savez(tmp, frac=ph.frac, vel=ph.art_velocity, field=ph.field_ppm)
        os.replace(tmp, path)
    except OSError:
        pass
    _PHANTOM = ph
    return ph
