"""One synthetic patient: a randomised head derived from the shared phantom.

Per subject (= study) we draw tissue parameters, head size and a smooth
non-linear deformation, the head's pose in the scanner, optional lesions
(MS plaques, tumour, infarct, haemorrhage) and a tissue texture.  Signal
volumes are computed on the phantom grid (compartment fractions x per
compartment signal) and sampled at patient-frame points through pose and
deformation.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from . import anatomy
from .anatomy import CH, ORIGIN, SHAPE, VOXEL_MM
from .geometry import rotation
from .tissues import TissueSet, sample_tissues

BRAIN_CENTRE_ANAT = np.array([0.0, 18.0, 10.0])  # anatomy LPS (MNI x,y negated)


def mni_to_anat(p):
    p = np.asarray(p, float)
    return p * np.array([-1.0, -1.0, 1.0])


class Subject:
    """A randomised head; all randomness comes from ``rng`` (one per study)."""

    def __init__(self, rng: np.random.Generator, field: float, *, pediatric: bool = False,
                 lesion: str | None = None):
        self.rng = rng
        self.field = field
        self.phantom = anatomy.get_phantom()
        self.lesion_type = lesion
        self.lesion_enhances = lesion == "tumour" or (lesion == "ms" and rng.random() < 0.3)
        self.tissues: TissueSet = sample_tissues(rng, field, lesion, self.lesion_enhances)
        s = 0.85 if pediatric else 1.0
        self.scale = s * np.exp(rng.normal(0, 0.05, 3))  # head size per axis
        # pose of the head in the scanner: tilt (pitch) dominates
        self.pose_R = rotation(rng.normal(0, 6), rng.normal(0, 3), rng.normal(0, 3))
        self.pose_t = np.array([rng.normal(0, 4), rng.normal(-5, 8), rng.normal(0, 15)])
        # coarse displacement field (mm) on an 8^3 lattice
        g = rng.normal(0, 1, (3, 8, 8, 8)).astype(np.float32)
        g = ndi.gaussian_filter(g, (0, 1, 1, 1))
        self.disp = g / (g.std() + 1e-6) * rng.uniform(1.5, 3.5)
        self.lesion_vol = self._make_lesions()
        tex = rng.standard_normal((34, 42, 42)).astype(np.float32)
        tex = ndi.gaussian_filter(tex, 1.0)
        tex = 1.0 + 0.04 * tex / (tex.std() + 1e-6)
        self.texture = ndi.zoom(tex, np.array(SHAPE) / np.array(tex.shape), order=1)[:SHAPE[0], :SHAPE[1], :SHAPE[2]]
        if self.texture.shape != SHAPE:
            self.texture = np.pad(self.texture, [(0, SHAPE[i] - self.texture.shape[i]) for i in range(3)], mode="edge")

    # ------------------------------------------------------------------ anatomy
    def _make_lesions(self):
        if self.lesion_type is None:
            return None
        rng = self.rng
        ph = self.phantom
        vol = np.zeros(SHAPE, np.float32)
        brain = ph.frac[CH["wm"]] + ph.frac[CH["gm"]]
        X, Y, Z = [ORIGIN[i] + VOXEL_MM * np.arange(SHAPE[i]) for i in range(3)]
        specs = []
        if self.lesion_type == "ms":
            for _ in range(rng.integers(4, 16)):
                sx = rng.choice([-1, 1])
                c = (sx * rng.uniform(8, 30), rng.uniform(-45, 25), rng.uniform(0, 35))
                r = rng.uniform(2, 6, 3)
                r[rng.integers(3)] *= 1.6  # ovoid (Dawson fingers)
                specs.append((c, r))
        elif self.lesion_type == "tumour":
            sx = rng.choice([-1, 1])
            c = (sx * rng.uniform(15, 45), rng.uniform(-60, 40), rng.uniform(-10, 45))
            specs.append((c, rng.uniform(10, 22, 3)))
        elif self.lesion_type == "infarct":
            sx = rng.choice([-1, 1])
            c = (sx * rng.uniform(30, 55), rng.uniform(-40, 20), rng.uniform(-5, 40))
            specs.append((c, rng.uniform(8, 18, 3)))
        else:  # haem
            sx = rng.choice([-1, 1])
            c = (sx * rng.uniform(15, 30), rng.uniform(-25, 10), rng.uniform(-5, 15))
            specs.append((c, rng.uniform(6, 14, 3)))
        for c, r in specs:
            lo = np.maximum(((np.array(c) - r - 3 - ORIGIN) / VOXEL_MM).astype(int), 0)
            hi = np.minimum(((np.array(c) + r + 3 - ORIGIN) / VOXEL_MM).astype(int) + 1, SHAPE)
            xx, yy, zz = np.meshgrid(X[lo[0]:hi[0]], Y[lo[1]:hi[1]], Z[lo[2]:hi[2]], indexing="ij")
            d = np.sqrt(((xx - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((zz - c[2]) / r[2]) ** 2)
            f = np.clip((1 - d) * min(r) / 1.5 + 0.5, 0, 1)
            sub = vol[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            np.maximum(sub, f, out=sub)
        return vol * np.clip(brain, 0, 1)

    # ------------------------------------------------------------------ signal
    def tissue_params(self, post_contrast: bool) -> TissueSet:
        return self.tissues.with_contrast(self.field, post_contrast)

    def signal_volume(self, s: np.ndarray, texture: bool = True) -> np.ndarray:
        """Combine per-compartment signal ``s`` (len channels + 1 lesion) into a volume."""
        s = np.asarray(s, np.float32)
        frac = self.phantom.frac
        vol = np.tensordot(s[:frac.shape[0]], frac, axes=1)
        if self.lesion_vol is not None:
            L = self.lesion_vol
            brain_sig = (frac[CH["wm"]] * s[CH["wm"]] + frac[CH["gm"]] * s[CH["gm"]]) / np.maximum(
                frac[CH["wm"]] + frac[CH["gm"]], 1e-3)
            vol += L * (s[-1] - brain_sig)
        if texture:
            vol *= self.texture
        return vol

    # ------------------------------------------------------------------ sampling
    def patient_to_index(self, pts: np.ndarray) -> np.ndarray:
        """Patient LPS points (..., 3) -> phantom voxel indices (3, ...)."""
        a = (pts - self.pose_t) @ self.pose_R  # R^T (p - t)
        mni = a * np.array([-1.0, -1.0, 1.0])
        c0 = np.array([0.0, -18.0, 10.0])
        mni = c0 + (mni - c0) / self.scale
        # displacement lattice spans the grid box
        lat = (mni - ORIGIN) / (np.array(SHAPE) * VOXEL_MM) * 7.0
        lat_t = np.moveaxis(lat, -1, 0)
        for i in range(3):
            mni[..., i] += ndi.map_coordinates(self.disp[i], lat_t, order=1, mode="nearest")
        return np.moveaxis((mni - ORIGIN) / VOXEL_MM, -1, 0)

    def sample(self, vol: np.ndarray, idx: np.ndarray, order: int = 1) -> np.ndarray:
        """Sample a phantom-grid volume at indices from :meth:`patient_to_index`."""
        return ndi.map_coordinates(vol, idx, order=order, mode="constant", cval=0.0)

    def anat_to_patient(self, a) -> np.ndarray:
        return self.pose_R @ np.asarray(a, float) + self.pose_t
