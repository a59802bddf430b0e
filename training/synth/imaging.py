"""From signal volumes to reconstructed slices: the "scanner" part.

For each planned slice the signal volume is sampled on the *acquired* grid
(through thickness with a few sub-planes for thick slices), then in k-space:
receive-bias, PE-direction T2 blur (TSE/HASTE/EPI), partial Fourier,
apodisation, motion/flow ghosts, EPI Nyquist ghost and B0 distortion, complex
Gaussian noise (-> Rician magnitude) and zero-filling to the recon matrix
(sinc interpolation, Gibbs ringing).  See mr-physics.md section 3.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .geometry import SliceStack


@dataclass
class AcqOpts:
    """Nuisance and k-space settings of one acquisition."""

    acq_r: int                 # acquired samples along the column direction (rows)
    acq_c: int                 # along the row direction
    snr: float = 30.0          # reference-tissue SNR
    ref_level: float = 0.3     # signal of the reference tissue (noise sigma = ref/snr)
    pe_axis: int = 0           # 0: phase encoding along image rows (vertical), 1: horizontal
    partial_fourier: float = 1.0
    pe_decay: float = 0.0      # exp(-pe_decay * |k|/kmax): T2 blur along PE
    filter: str = "none"       # none | hamming | fermi
    ghost: float = 0.0         # motion ghost amplitude
    epi_bw_hz: float = 0.0     # PE bandwidth per pixel (>0 -> EPI distortion)
    nyquist: float = 0.0       # EPI N/2 ghost
    bias: float = 0.25         # strength of the receive field inhomogeneity
    field_t: float = 3.0
    magnitude: bool = True


def slice_indices(subject, stack: SliceStack, n_r: int, n_c: int, slices=None) -> np.ndarray:
    """Phantom indices (3, K, nsub, n_r, n_c) for the kept slices, thickness sub-sampled.

    The (smooth) patient->phantom mapping is evaluated exactly on a coarse
    lattice of each slice and linearly interpolated to the sampling grid;
    sub-planes through the thickness are offset along the mapped normal.
    """
    slices = stack.keep if slices is None else slices
    th = stack.thickness
    nsub = 1 if th <= 2.0 else (2 if th <= 4.0 else 3)
    offs = [0.0] if nsub == 1 else list(np.linspace(-th / 3.0, th / 3.0, nsub))
    cr, cc = max(2, n_r // 8 + 1), max(2, n_c // 8 + 1)
    out = np.empty((3, len(slices), nsub, n_r, n_c), np.float32)
    # derivative of the index along the slice normal (affine part)
    d = subject.patient_to_index(np.stack([stack.centre, stack.centre + stack.normal]))
    dn = (d[:, 1] - d[:, 0]).astype(np.float32)
    for i, k in enumerate(slices):
        p0 = stack.ipp(k)
        rr = np.linspace(0, (n_r - 1) * stack.fov_r / n_r, cr)
        ccs = np.linspace(0, (n_c - 1) * stack.fov_c / n_c, cc)
        pts = p0 + rr[:, None, None] * stack.col + ccs[None, :, None] * stack.row
        ci = subject.patient_to_index(pts)
        for a in range(3):
            full = ndi.zoom(ci[a].astype(np.float32), (n_r / cr, n_c / cc), order=1, grid_mode=False)
            full = full[:n_r, :n_c]
            for j, o in enumerate(offs):
                out[a, i, j] = full + o * dn[a]
    return out


def sample_volumes(subject, vols, idx: np.ndarray, texture: bool = True):
    """Sample each volume at ``idx``; average the thickness sub-planes."""
    out = []
    for v in vols:
        s = ndi.map_coordinates(v, idx, order=1, mode="constant", cval=0.0, output=np.float32)
        out.append(s.mean(axis=1))
    return out


def bias_field(rng, n_r, n_c, strength):
    """Smooth multiplicative receive field (exp of a coarse random grid)."""
    g = rng.normal(0, 1, (4, 4))
    f = ndi.zoom(g, (n_r / 4.0, n_c / 4.0), order=3, mode="nearest")[:n_r, :n_c]
    if f.shape != (n_r, n_c):
        f = np.pad(f, ((0, n_r - f.shape[0]), (0, n_c - f.shape[1])), mode="edge")
    return np.exp(strength * f / (np.abs(g).max() + 1e-6))


def epi_distort(img, shift_px, pe_axis):
    """Shift pixels along PE by ``shift_px`` (backward map, linear)."""
    n_r, n_c = img.shape
    rr, cc = np.meshgrid(np.arange(n_r), np.arange(n_c), indexing="ij")
    if pe_axis == 0:
        rr = rr - shift_px
    else:
        cc = cc - shift_px
    return ndi.map_coordinates(img, [rr, cc], order=1, mode="constant")


def reconstruct(img: np.ndarray, out_shape, opts: AcqOpts, rng, shared_bias=None) -> np.ndarray:
    """k-space processing of one acquired slice and zero-fill to ``out_shape``."""
    n_r, n_c = img.shape
    if shared_bias is not None:
        img = img * shared_bias
    k = np.fft.fftshift(np.fft.fft2(img))
    ky = (np.arange(n_r) - n_r // 2) / (n_r / 2.0)
    kx = (np.arange(n_c) - n_c // 2) / (n_c / 2.0)
    kpe = ky if opts.pe_axis == 0 else kx
    w = np.ones_like(kpe)
    if opts.pe_decay:
        w = w * np.exp(-opts.pe_decay * np.abs(kpe))
    if opts.partial_fourier < 0.999:
        cut = -1.0 + 2.0 * (1.0 - opts.partial_fourier)
        w = w * (kpe >= cut)
    wk = w[:, None] if opts.pe_axis == 0 else w[None, :]
    if opts.filter == "hamming":
        wk = wk * (0.54 + 0.46 * np.cos(np.pi * ky))[:, None] * (0.54 + 0.46 * np.cos(np.pi * kx))[None, :]
    elif opts.filter == "fermi":
        kr = np.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
        wk = wk / (1 + np.exp((kr - 0.9) / 0.05))
    k = k * wk
    if opts.ghost > 0:
        nline = n_r if opts.pe_axis == 0 else n_c
        bad = rng.random(nline) < 0.15
        ph = np.exp(1j * rng.normal(0, np.pi * opts.ghost * 4, nline)) * bad + (~bad)
        k = k * (ph[:, None] if opts.pe_axis == 0 else ph[None, :])
    if opts.nyquist > 0:
        nline = n_r if opts.pe_axis == 0 else n_c
        alt = np.where(np.arange(nline) % 2 == 0, 1.0, np.exp(1j * opts.nyquist * 3))
        k = k * (alt[:, None] if opts.pe_axis == 0 else alt[None, :])
    sigma = opts.ref_level / max(opts.snr, 1e-3) * np.sqrt(n_r * n_c)
    k = k + (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape)) * sigma / np.sqrt(2)
    R, C = out_shape
    big = np.zeros((R, C), complex)
    r0, c0 = (R - n_r) // 2, (C - n_c) // 2
    if r0 >= 0 and c0 >= 0:
        big[r0:r0 + n_r, c0:c0 + n_c] = k
    else:  # acquired grid larger than recon: crop k-space
        rs, cs = max(-r0, 0), max(-c0, 0)
        kk = k[rs:rs + min(R, n_r), cs:cs + min(C, n_c)]
        big[max(r0, 0):max(r0, 0) + kk.shape[0], max(c0, 0):max(c0, 0) + kk.shape[1]] = kk
    im = np.fft.ifft2(np.fft.ifftshift(big)) * (R * C) / (n_r * n_c)
    return np.abs(im) if opts.magnitude else im


def acquire(subject, stack: SliceStack, vols, opts: AcqOpts, rng, texture=True, field_vol=None,
            extra=None):
    """Render ``vols`` (list of phantom-grid volumes) on ``stack``.

    Returns a list (per volume) of lists (per kept slice) of float images at
    the recon matrix.  ``extra`` (optional callable) gets (samples, idx) and
    may modify the sampled acquired-grid images before reconstruction.
    """
    n_r, n_c = opts.acq_r, opts.acq_c
    idx = slice_indices(subject, stack, n_r, n_c)
    samples = sample_volumes(subject, vols, idx, texture)
    if extra is not None:
        samples = extra(samples, idx)
    shift = None
    if opts.epi_bw_hz > 0:
        fld = ndi.map_coordinates(subject.phantom.field_ppm, idx, order=1, mode="nearest").mean(axis=1)
        hz = fld * 42.58 * opts.field_t
        shift = hz / opts.epi_bw_hz
    bias = bias_field(rng, n_r, n_c, opts.bias)
    out = []
    for s in samples:
        imgs = []
        for k in range(s.shape[0]):
            img = s[k]
            if shift is not None:
                img = epi_distort(img, shift[k], opts.pe_axis)
            imgs.append(reconstruct(img, (stack.rows, stack.cols), opts, rng, bias))
        out.append(imgs)
    return out
