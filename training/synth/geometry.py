"""Slice geometry in the DICOM patient frame (LPS) and orientation labels.

A :class:`SliceStack` is what a technologist plans: an orthonormal in-plane
basis (row direction = ImageOrientationPatient[0:3], column direction =
[3:6]), a centre, slice spacing/thickness and field of view.  Pixel (r, c) of
slice k lies at ``IPP_k + c * dc * row + r * dr * col``; the synthetic pixels
are sampled exactly there (see :mod:`training.synth.subject`), so headers and
pixels agree by construction.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

AXES = {
    # (row direction, column direction) in LPS for the standard display of each plane
    "axial": (np.array([1.0, 0, 0]), np.array([0, 1.0, 0])),
    "coronal": (np.array([1.0, 0, 0]), np.array([0, 0, -1.0])),
    "sagittal": (np.array([0, 1.0, 0]), np.array([0, 0, -1.0])),
}


def rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    """Rotation matrix from angles in degrees about x, y, z (applied x, then y, then z)."""
    a, b, c = np.deg2rad([rx, ry, rz])
    Rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    Ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    Rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def orientation_label(iop) -> str:
    """Label rule of shared/realdata: slice normal's largest |component| >= 0.8, else oblique."""
    iop = np.asarray(iop, float)
    n = np.cross(iop[:3], iop[3:6])
    n = np.abs(n / (np.linalg.norm(n) + 1e-12))
    k = int(np.argmax(n))
    if n[k] < 0.8:
        return "oblique"
    return ("sagittal", "coronal", "axial")[k]


def series_orientation(iops) -> str:
    """Series label: mixed orientations -> oblique."""
    labels = {orientation_label(i) for i in iops}
    return labels.pop() if len(labels) == 1 else "oblique"


@dataclass
class SliceStack:
    """A planned stack of parallel slices (one IOP)."""

    row: np.ndarray          # unit vector along image rows (left -> right on screen)
    col: np.ndarray          # unit vector down the image
    centre: np.ndarray       # LPS mm, centre of the stack
    rows: int                # recon matrix
    cols: int
    fov_r: float             # mm along ``col`` (rows direction extent)
    fov_c: float             # mm along ``row``
    n_slices: int            # slices/partitions in the acquisition
    spacing: float           # centre-to-centre distance
    thickness: float
    keep: list = field(default_factory=list)  # indices actually written (subset for 3D)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row, self.col)

    @property
    def iop(self) -> list:
        return [float(v) for v in np.concatenate([self.row, self.col])]

    @property
    def pixel_spacing(self):
        """DICOM PixelSpacing: [spacing between rows, spacing between columns]."""
        return [self.fov_r / self.rows, self.fov_c / self.cols]

    def slice_centre(self, k: int) -> np.ndarray:
        return self.centre + (k - (self.n_slices - 1) / 2.0) * self.spacing * self.normal

    def ipp(self, k: int) -> np.ndarray:
        """ImagePositionPatient (centre of the first transmitted pixel) of slice ``k``."""
        dr, dc = self.pixel_spacing
        c = self.slice_centre(k)
        return c - self.row * (self.cols / 2.0 - 0.5) * dc - self.col * (self.rows / 2.0 - 0.5) * dr

    def grid(self, k: int, n_r: int, n_c: int, offset: float = 0.0) -> np.ndarray:
        """Sample points (n_r, n_c, 3) of slice ``k`` on an ``n_r`` x ``n_c`` grid
        covering the same FOV and starting at the same first pixel centre as the
        recon grid (so FFT zero-fill to rows x cols lands on the recon pixels)."""
        p0 = self.ipp(k) + offset * self.normal
        rr = np.arange(n_r) * (self.fov_r / n_r)
        cc = np.arange(n_c) * (self.fov_c / n_c)
        return p0 + rr[:, None, None] * self.col + cc[None, :, None] * self.row


def plan_stack(rng, plane: str, pose_R: np.ndarray, pose_t: np.ndarray, *, anat_centre, fov, matrix,
               n_slices, spacing, thickness, oblique_deg=0.0, inplane_deg=0.0, keep=None,
               rect=1.0) -> SliceStack:
    """Plan a stack aligned to the head (pose) in ``plane``, optionally tilted.

    ``anat_centre`` is in the anatomy LPS frame (MNI with x,y negated);
    ``oblique_deg`` tilts the plane about a random in-plane axis (clinically
    oblique or angled slices); ``inplane_deg`` rotates within the plane.
    """
    row, col = AXES[plane]
    if oblique_deg:
        ax = rng.choice([0, 1])
        axis = row if ax == 0 else col
        row, col = _rot_about(row, axis, oblique_deg), _rot_about(col, axis, oblique_deg)
    if inplane_deg:
        n = np.cross(row, col)
        row, col = _rot_about(row, n, inplane_deg), _rot_about(col, n, inplane_deg)
    row, col = pose_R @ row, pose_R @ col
    centre = pose_R @ np.asarray(anat_centre, float) + pose_t
    # rectangular FOV: the horizontal (left-right for axial/coronal) extent is reduced
    rows = int(matrix)
    cols = int(round(matrix * rect / 2) * 2)
    fov_r = float(fov)
    fov_c = float(fov) * cols / rows
    return SliceStack(row, col, centre, rows, cols, fov_r, fov_c, int(n_slices), float(spacing),
                      float(thickness), list(range(n_slices)) if keep is None else list(keep))


def _rot_about(v, axis, deg):
    axis = axis / np.linalg.norm(axis)
    t = np.deg2rad(deg)
    return (v * np.cos(t) + np.cross(axis, v) * np.sin(t) + axis * (axis @ v) * (1 - np.cos(t)))


def even_subset(n_total: int, n_keep: int) -> list:
    """Evenly spaced indices, first and last included (like the realdata subsampling)."""
    if n_keep >= n_total:
        return list(range(n_total))
    return sorted(set(int(round(x)) for x in np.linspace(0, n_total - 1, n_keep)))
