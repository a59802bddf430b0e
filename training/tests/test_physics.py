"""Signal equations produce the contrasts that define the classes."""
import numpy as np
import pytest

from training.synth import physics
from training.synth.tissues import sample_tissues


@pytest.fixture(params=[1.5, 3.0])
def tis(request):
    return sample_tissues(np.random.default_rng(1), request.param, None, False), request.param


def idx(t, name):
    return t.names.index(name)


def test_t1_weighting(tis):
    t, _ = tis
    s = physics.spin_echo(t, 550, 10)
    assert s[idx(t, "wm")] > s[idx(t, "gm")] > s[idx(t, "csf")]
    m = physics.mprage(t, 2300, 900, 9, 7, 176, 3)
    assert m[idx(t, "wm")] > m[idx(t, "gm")] > m[idx(t, "csf")]


def test_t2_and_flair(tis):
    t, field = tis
    s = physics.spin_echo(t, 5000, 100)
    assert s[idx(t, "csf")] > s[idx(t, "gm")] > s[idx(t, "wm")]
    trec = 9000 - 200 - 2300
    ti = physics.csf_null_ti(field, trec)
    f = physics.inversion_recovery(t, 9000, 110, ti, trec=9000 - ti - 200)
    assert f[idx(t, "csf")] < 0.35 * f[idx(t, "gm")], "FLAIR must null CSF"
    assert f[idx(t, "gm")] > f[idx(t, "wm")]


def test_bssfp_fluid_bright(tis):
    t, _ = tis
    b = physics.bssfp(t, 6, 60)
    assert b[idx(t, "csf")] > 1.5 * b[idx(t, "wm")]


def test_contrast_shortens_t1(tis):
    t, field = tis
    post = t.with_contrast(field, True)
    a = idx(t, "artery")
    assert post.t1[a] < 0.6 * t.t1[a]
    assert np.isclose(post.t1[idx(t, "wm")], t.t1[idx(t, "wm")])


def test_post_contrast_volume_enhances_vessels_not_white_matter():
    from training.synth.anatomy import CH
    from training.synth.subject import Subject
    sub = Subject(np.random.default_rng(3), 3.0)
    vols = [sub.signal_volume(physics.mprage(sub.tissue_params(post), 2300, 900, 9, 7, 176, 3), texture=False)
            for post in (False, True)]
    f = sub.phantom.frac
    ves = (f[CH["vein"]] + f[CH["artery"]] + f[CH["enh"]]) > 0.6
    wm = f[CH["wm"]] > 0.95
    assert vols[1][ves].mean() > 1.5 * vols[0][ves].mean()
    assert np.isclose(vols[1][wm].mean(), vols[0][wm].mean(), rtol=0.02)


def test_inflow_brighter_than_stationary():
    m = physics.inflow_factor(0.1, 0.9, 20, 22, 1700, np.array([0, 10, 100]))
    assert m[0] > m[1] > m[2] >= 0.1
