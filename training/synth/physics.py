"""Signal equations (shared/notes/mr-physics.md section 2), vectorised over tissues.

Every function takes a :class:`~training.synth.tissues.TissueSet` (arrays over
compartments) and the sequence timing in ms / degrees, and returns the
steady-state magnitude signal per compartment (arbitrary units, M0 = PD).
"""
from __future__ import annotations

import numpy as np

from .tissues import TissueSet


def spin_echo(t: TissueSet, tr: float, te: float) -> np.ndarray:
    """SE / TSE (effective TE): PD [1 - 2 e^-(TR-TE/2)/T1 + e^-TR/T1] e^-TE/T2."""
    rec = 1.0 - 2.0 * np.exp(-(tr - te / 2.0) / t.t1) + np.exp(-tr / t.t1)
    return t.pd * np.clip(rec, 0, None) * np.exp(-te / t.t2)


def inversion_recovery(t: TissueSet, tr: float, te: float, ti: float, trec: float | None = None,
                       eta: float = 0.97) -> np.ndarray:
    """Magnitude IR (FLAIR, STIR, T1-FLAIR)."""
    trec = tr - ti if trec is None else trec
    mz = 1.0 - (1.0 + eta * (1.0 - np.exp(-max(trec, 1.0) / t.t1))) * np.exp(-ti / t.t1)
    return t.pd * np.abs(mz) * np.exp(-te / t.t2)


CSF_T1_NOMINAL = {1.5: 3800.0, 3.0: 4300.0}


def csf_null_ti(field: float, trec: float, eta: float = 0.97) -> float:
    """Inversion time that nulls CSF of nominal T1 after recovery ``trec`` (as protocols are tuned)."""
    t1 = CSF_T1_NOMINAL[3.0 if field > 2 else 1.5]
    return float(t1 * np.log(1.0 + eta * (1.0 - np.exp(-trec / t1))))


def spoiled_gre(t: TissueSet, tr: float, te: float, fa_deg: float, t2star: bool = True) -> np.ndarray:
    """Spoiled gradient echo steady state."""
    a = np.deg2rad(fa_deg)
    e1 = np.exp(-tr / t.t1)
    s = t.pd * np.sin(a) * (1 - e1) / (1 - np.cos(a) * e1)
    return s * np.exp(-te / (t.t2s if t2star else t.t2))


def mprage(t: TissueSet, tr: float, ti: float, fa_deg: float, esp: float, n_lines: int, te: float,
           eta: float = 0.96, cycles: int = 4) -> np.ndarray:
    """Inversion-prepared 3D GRE (MPRAGE / IR-SPGR / TFE) by piecewise Mz tracking.

    ``ti`` runs from the inversion to the k-space centre (Siemens convention);
    the readout train of ``n_lines`` pulses is centred on it.
    """
    a = np.deg2rad(fa_deg)
    m0 = t.pd
    train = n_lines * esp
    t_before = max(ti - train / 2.0, 5.0)
    td = max(tr - t_before - train, 5.0)
    e = np.exp(-esp / t.t1)
    mz = m0.copy()
    sig = np.zeros_like(m0)
    for _ in range(cycles):
        mz = -eta * mz
        mz = m0 + (mz - m0) * np.exp(-t_before / t.t1)
        for k in range(n_lines):
            if k == n_lines // 2:
                sig = mz * np.sin(a)
            mz = mz * np.cos(a)
            mz = m0 + (mz - m0) * e
        mz = m0 + (mz - m0) * np.exp(-td / t.t1)
    return np.abs(sig) * np.exp(-te / t.t2s)


def bssfp(t: TissueSet, tr: float, fa_deg: float) -> np.ndarray:
    """Balanced SSFP on resonance, TE = TR/2."""
    a = np.deg2rad(fa_deg)
    e1, e2 = np.exp(-tr / t.t1), np.exp(-tr / t.t2)
    return t.pd * np.sin(a) * (1 - e1) * np.sqrt(e2) / (1 - (e1 - e2) * np.cos(a) - e1 * e2)


def bssfp_offres_factor(theta: np.ndarray, depth: float = 0.85) -> np.ndarray:
    """Relative bSSFP signal versus off-resonance phase per TR (banding)."""
    return 1.0 - depth * np.exp(-((np.angle(np.exp(1j * (theta - np.pi)))) ** 2) / 0.08)


def variable_flip_tse(t: TissueSet, tr: float, te_eff: float, ti: float | None = None) -> np.ndarray:
    """3D variable-flip TSE (SPACE/CUBE/VISTA), lookup-style approximation.

    The long echo train with low refocusing angles lengthens apparent T2
    (x1.4) and mixes in T1 weighting via the stimulated echoes.
    """
    t2app = t.t2 * 1.4
    base = t.pd * (1 - np.exp(-tr / t.t1)) * np.exp(-te_eff / t2app)
    if ti is not None:
        trec = tr - ti - 600.0
        mz = 1.0 - (1.0 + 0.95 * (1 - np.exp(-max(trec, 50) / t.t1))) * np.exp(-ti / t.t1)
        base = t.pd * np.abs(mz) * np.exp(-te_eff / t2app)
    return base


def inflow_factor(m_ss: float, m0: float, fa_deg: float, tr: float, t1: float, n_pulses: np.ndarray) -> np.ndarray:
    """Longitudinal magnetisation of blood after ``n_pulses`` excitations (TOF)."""
    a = np.deg2rad(fa_deg)
    q = np.cos(a) * np.exp(-tr / t1)
    return m_ss + (m0 - m_ss) * q ** np.clip(n_pulses, 0, 500)


def dsc_concentration(t_s: np.ndarray, t0: float, alpha: float = 3.0, beta: float = 1.2,
                      recirc: float = 0.15) -> np.ndarray:
    """Gamma-variate arterial input (normalised to peak 1) plus recirculation and plateau."""
    def gv(tt, tz):
        x = np.clip(tt - tz, 0, None)
        g = x ** alpha * np.exp(-x / beta)
        return g
    peak = (alpha * beta) ** alpha * np.exp(-alpha)
    c = gv(t_s, t0) / peak
    c += recirc * gv(t_s, t0 + 12.0) / peak
    c += 0.08 * (1 - np.exp(-np.clip(t_s - t0, 0, None) / 8.0))
    return c
