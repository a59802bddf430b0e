"""Test helpers: load series frames with their geometry (classic or enhanced)."""
import os

import numpy as np
import pydicom
from scipy import ndimage as ndi


def load_frames(folder):
    """[(image float, ipp, iop, pixel_spacing)] sorted by InstanceNumber / frame order."""
    out = []
    files = sorted(os.listdir(folder))
    dss = [pydicom.dcmread(os.path.join(folder, f)) for f in files]
    dss.sort(key=lambda d: int(d.InstanceNumber))
    for ds in dss:
        arr = ds.pixel_array.astype(np.float32)
        if "PerFrameFunctionalGroupsSequence" in ds:
            sh = ds.SharedFunctionalGroupsSequence[0]
            n = int(ds.NumberOfFrames)
            arr = arr.reshape((n,) + arr.shape[-2:]) if arr.ndim >= 3 else arr[None]
            for i, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
                iop = (fg if "PlaneOrientationSequence" in fg else sh).PlaneOrientationSequence[0].ImageOrientationPatient
                ps = sh.PixelMeasuresSequence[0].PixelSpacing
                ipp = fg.PlanePositionSequence[0].ImagePositionPatient
                out.append((arr[i], np.array(ipp, float), np.array(iop, float), np.array(ps, float)))
        else:
            out.append((arr, np.array(ds.ImagePositionPatient, float), np.array(ds.ImageOrientationPatient, float),
                        np.array(ds.PixelSpacing, float)))
    return out


def head_mask(img):
    """Foreground (head) mask of a magnitude image."""
    s = ndi.gaussian_filter(img, 2)
    m = s > 0.12 * np.percentile(s, 99)
    m = ndi.binary_opening(m, iterations=2)
    lab, n = ndi.label(m)
    if n == 0:
        return m
    sizes = ndi.sum(m, lab, range(1, n + 1))
    m = lab == (1 + int(np.argmax(sizes)))
    return ndi.binary_fill_holes(m)


def patient_coords(mask, ipp, iop, ps):
    """Patient (LPS) coordinates of the mask's pixels, (N, 3)."""
    r, c = np.nonzero(mask)
    row, col = iop[:3], iop[3:]
    return ipp + c[:, None] * ps[1] * row + r[:, None] * ps[0] * col


def lr_symmetry(mask):
    """IoU of the mask with its left-right mirror about the mask's own centre column."""
    cols = np.nonzero(mask.any(0))[0]
    if len(cols) == 0:
        return 0.0
    c0 = (cols.min() + cols.max()) / 2.0
    shift = mask.shape[1] / 2.0 - 0.5 - c0
    m = ndi.shift(mask.astype(float), (0, shift), order=0) > 0.5
    f = m[:, ::-1]
    return float((m & f).sum() / max((m | f).sum(), 1))
