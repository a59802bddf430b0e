"""Per-tissue relaxation and diffusion parameters at 1.5 T and 3 T.

Values follow shared/notes/mr-physics.md section 1 (Wright 2008, Stanisz 2005,
de Bazelaire 2004, Lu 2005, Helenius 2002 ...).  Each study draws its own
values around these centres (lognormal, correlated across brain tissues) so
that no two heads have the same contrast.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import CHANNELS

# name: (T1 1.5T, T1 3T, T2 1.5T, T2 3T, T2* 1.5T, T2* 3T, PD, ADC [1e-3 mm2/s], chi [ppm vs water])
TABLE = {
    "wm":       (780, 950, 78, 68, 66, 53, 0.70, 0.72, -0.03),
    "gm":       (1200, 1600, 95, 85, 84, 66, 0.82, 0.88, 0.0),
    "csf":      (3800, 4300, 2000, 1800, 900, 600, 1.00, 3.1, 0.0),
    "fat":      (343, 382, 58, 68, 40, 30, 0.95, 0.02, 0.6),
    "marrow":   (525, 586, 49, 49, 15, 9, 0.85, 0.35, 0.3),
    "muscle":   (950, 1200, 35, 32, 25, 20, 0.78, 1.4, 0.0),
    "bone":     (250, 250, 1.0, 1.0, 0.4, 0.3, 0.05, 0.0, -2.0),
    "skin":     (600, 700, 40, 35, 25, 20, 0.70, 1.0, 0.0),
    "artery":   (1450, 1750, 270, 200, 100, 50, 0.87, 2.5, 0.05),
    "vein":     (1400, 1700, 130, 62, 35, 18, 0.87, 2.0, 0.35),
    "enh":      (900, 1100, 80, 70, 40, 30, 0.80, 1.2, 0.0),
    "disc":     (1100, 1300, 120, 100, 60, 45, 0.90, 1.6, 0.0),
    "vitreous": (3800, 4200, 1500, 1400, 700, 500, 1.00, 3.0, 0.0),
}
LESION_TYPES = {
    # T1 1.5/3, T2 1.5/3, T2* 1.5/3, PD, ADC, chi
    "ms":      (1200, 1550, 160, 140, 80, 60, 0.86, 1.1, 0.0),
    "tumour":  (1350, 1700, 130, 115, 70, 55, 0.88, 1.3, 0.0),
    "infarct": (1150, 1450, 120, 105, 70, 55, 0.85, 0.40, 0.0),
    "haem":    (700, 800, 60, 50, 10, 6, 0.80, 0.6, 1.2),
}
GD_R1 = {1.5: 4.3, 3.0: 3.9}  # L/mmol/s, whole blood order of magnitude


@dataclass
class TissueSet:
    """Arrays over compartments (the phantom channels plus one lesion slot)."""

    names: tuple
    t1: np.ndarray
    t2: np.ndarray
    t2s: np.ndarray
    pd: np.ndarray
    adc: np.ndarray  # mm2/s
    chi: np.ndarray
    gd_conc: np.ndarray  # mmol/L once contrast is given

    def with_contrast(self, field: float, on: bool) -> "TissueSet":
        """Copy with Gd shortening applied to T1 (and slightly T2) when ``on``."""
        if not on:
            return self
        r1 = GD_R1[3.0 if field > 2 else 1.5]
        t1 = 1.0 / (1.0 / self.t1 + r1 * self.gd_conc / 1000.0)
        t2 = 1.0 / (1.0 / self.t2 + 5.0 * self.gd_conc / 1000.0)
        return TissueSet(self.names, t1, t2, self.t2s, self.pd, self.adc, self.chi, self.gd_conc)


def sample_tissues(rng: np.random.Generator, field: float, lesion: str | None, lesion_enhances: bool) -> TissueSet:
    """Draw one subject's tissue parameters at ``field`` tesla."""
    hi = field > 2.0
    names = tuple(CHANNELS) + ("lesion",)
    rows = [TABLE[n] for n in CHANNELS] + [LESION_TYPES[lesion or "ms"]]
    arr = np.array(rows, float)
    t1 = arr[:, 1 if hi else 0].copy()
    t2 = arr[:, 3 if hi else 2].copy()
    t2s = arr[:, 5 if hi else 4].copy()
    pd, adc, chi = arr[:, 6].copy(), arr[:, 7].copy() * 1e-3, arr[:, 8].copy()
    n = len(names)
    common = rng.normal(0, 0.07)  # subject-level shift shared by brain tissues (correlated)
    fluid = np.array([nm in ("csf", "vitreous") for nm in names])
    for v, sd in ((t1, 0.10), (t2, 0.10), (t2s, 0.12)):
        # free water (CSF, vitreous) varies little between people; tissues vary more and together
        v *= np.where(fluid, np.exp(rng.normal(0, 0.025, n)), np.exp(common + rng.normal(0, sd, n)))
    pd *= np.exp(rng.normal(0, 0.03, n))
    pd[:] = np.clip(pd, 0.02, 1.05)
    adc *= np.exp(rng.normal(0, 0.06, n))
    # keep the brain ordering physical: T1 WM < GM < CSF, T2 WM < GM
    i = {k: names.index(k) for k in ("wm", "gm", "csf")}
    t1[i["gm"]] = max(t1[i["gm"]], t1[i["wm"]] * 1.25)
    t2[i["gm"]] = max(t2[i["gm"]], t2[i["wm"]] * 1.08)
    gd = np.zeros(n)
    gd[names.index("artery")] = rng.uniform(0.4, 1.0)
    gd[names.index("vein")] = rng.uniform(0.3, 0.9)
    gd[names.index("enh")] = rng.uniform(0.15, 0.5)
    gd[names.index("disc")] = 0.05
    gd[names.index("muscle")] = rng.uniform(0.05, 0.15)
    gd[names.index("skin")] = rng.uniform(0.05, 0.2)
    gd[names.index("marrow")] = rng.uniform(0.05, 0.2)
    if lesion_enhances:
        gd[names.index("lesion")] = rng.uniform(0.15, 0.4)
    return TissueSet(names, t1, t2, t2s, pd, adc, chi, gd)
