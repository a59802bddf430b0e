"""Header realism of the series the shipped forest confused on real data (issue 4): 2D FLASH T1 vs
localizer, derived diffusion maps, EPI and Philips field maps, ASL source dynamics, scout MPR children."""
import numpy as np
import pytest

from training.synth import sequences as S
from training.synth import sequences_epi as E
from training.synth import sequences_other as O
from training.synth.subject import Subject
from training.synth.vendors import pick_scanner, series_meta


def _ctx(vendor, field=3.0, seed=0):
    rng = np.random.default_rng(seed)
    return S.Ctx(subject=Subject(rng, field), vendor=vendor, field=field, rng=rng, max_images=2)


def _meta(ser, vendor, field=3.0, enhanced=False, seed=0):
    rng = np.random.default_rng(seed)
    return series_meta(rng, ser, pick_scanner(rng, vendor, field), enhanced)


@pytest.fixture(scope="module")
def siemens():
    return _ctx("Siemens")


def test_flash_t1_and_localizer_parameters_do_not_overlap(siemens):
    seen = 0
    for _ in range(40):
        ser = S.make_t1(siemens, post=False)[0]
        if ser.subtype != "gre":
            continue
        seen += 1
        a = ser.acq
        assert 150 <= a["tr"] <= 400 and 60 <= a["fa"] <= 90 and 2.3 <= a["te"] <= 5.0
        if seen >= 3:
            break
    assert seen >= 1
    scout = O.make_scout(siemens)[0]
    if scout.subtype in ("3plane", "single"):
        assert scout.acq["tr"] < 20 and scout.acq["fa"] <= 30


def test_tensor_b0_keeps_its_diffusion_image_type_and_b0(siemens):
    ser = E.make_tensor_b0(siemens)[0]
    assert ser.sequence == "other" and all(f.b_value == 0 for f in ser.frames) and ser.n_temporal > 1
    for enhanced in (False, True):
        it = _meta(ser, "Siemens", enhanced=enhanced).image_type
        assert it[0] == "DERIVED" and "DIFFUSION" in it and "TENSOR_B0" in it


def test_a_dti_reconstruction_writes_its_maps_together():
    # Siemens writes FA, colour FA and the tensor b0 from one DTI acquisition: one DTI step yields
    # several derived series, every one labelled other, and the tensor b0 is not a rarity.
    subtypes = []
    for seed in range(24):
        out = E.make_fa(_ctx("Siemens", seed=seed))
        assert out and all(ser.sequence == "other" for ser in out)
        subtypes.append(sorted(ser.subtype for ser in out))
    assert any(len(s) >= 2 for s in subtypes)
    assert sum("fa_tensor_b0" in s for s in subtypes) >= 6


def test_epi_fieldmap_is_spin_echo_epi_without_diffusion():
    ctx = _ctx("GE", seed=1)
    ser = E.make_fieldmap_epi(ctx)[0]
    assert ser.sequence == "other" and ser.subtype == "fieldmap_epi"
    assert all(f.b_value is None for f in ser.frames) and ser.acq["te"] > 50 and ser.acq["tr"] > 4000
    ge = _meta(ser, "GE")
    assert ge.scanning_sequence == "EP\\RM" and "EPI_GEMS" in ge.scan_options
    sm = _meta(ser, "Siemens")
    assert sm.scanning_sequence == "EP" and "DIFFUSION" not in sm.image_type and sm.sequence_name.startswith("epse2d")


def test_philips_b0_map_is_3d_dual_echo_ffe():
    ctx = _ctx("Philips", seed=2)
    for _ in range(4):
        ser = E.make_fieldmap(ctx)[0]
        a = ser.acq
        assert a["mr_type"] == "3D" and a["etl"] == 2 and a["tr"] <= 25 and a["fa"] <= 25
        assert abs((a["te2"] - a["te1"]) - 2.3) < 1e-6


def test_aahead_mpr_children_are_derived_primary(siemens):
    for seed in range(6):
        for ser in O.make_aahead_scout(siemens)[1:]:
            for enhanced in (False, True):
                it = _meta(ser, "Siemens", enhanced=enhanced, seed=seed).image_type
                assert it[:3] == ["DERIVED", "PRIMARY", "MPR"], it


def test_no_pre_contrast_t1_is_planned_after_the_contrast():
    """A T1 acquired after the injection (or a DSC bolus) enhances, so it cannot be labelled pre-contrast;
    a post-contrast T1 has an injection before it."""
    from training.synth.protocols import CONTRAST_GIVEN, POST_CONTRAST, plan_study
    pre = {"t1_pre", "t1_iac_pre", "t1_3d_pre", "vibe_pre", "vibe_vfa"}
    extras_seen = 0
    for index in range(2000):
        _, steps = plan_study(np.random.default_rng([0, index]))
        given = [i for i, s in enumerate(steps) if s in CONTRAST_GIVEN]
        post = [i for i, s in enumerate(steps) if s in POST_CONTRAST]
        if post:  # post-contrast series follow an injection
            assert given and given[0] < post[0], steps
        if given:
            assert not pre & set(steps[given[0]:]), steps
            extras_seen += steps.count("t1_pre") + steps.count("vibe_pre")
    assert extras_seen > 100  # the pre-contrast steps (protocol and extras) were exercised


def test_post_contrast_t1_often_reruns_the_pre_contrast_protocol():
    # A post-contrast T1 of the kind acquired before the injection often repeats that acquisition
    # (the same timing and slices, so the two compare slice by slice); a variable-flip-angle series
    # is never the one repeated.
    makers = {"t1": lambda ctx, post: S.make_t1(ctx, post), "t1_3d": lambda ctx, post: S.make_t1_3d(ctx, post),
              "vibe": lambda ctx, post: S.make_vibe(ctx, post)}
    for kind, make in makers.items():
        reruns = 0
        for seed in range(12):
            ctx = _ctx("Siemens", seed=seed)
            pre = make(ctx, False)[0]
            ctx.post = True
            post = make(ctx, True)[0]
            assert pre.sequence.endswith("_pre") and post.sequence.endswith("_post")
            same = all(pre.acq[k] == post.acq[k] for k in ("tr", "te", "ti", "fa")) and pre.frames[0].iop == post.frames[0].iop
            reruns += same
        assert 2 <= reruns <= 11, kind
    ctx = _ctx("Siemens", seed=1)
    S.make_vibe(ctx, False, flip=5.0)
    assert "vibe" not in ctx.pre_contrast


def test_variable_flip_angle_set_shares_timing_and_slab():
    # DESPOT1 T1 mapping needs the same TR, TE and slab at every flip angle (real RIDER: 4.43/2.1 ms
    # at 5 and 10 degrees); only the flip angle differs between the series of one set.
    from training.synth.generator import run_step
    ctx = _ctx("Siemens", seed=3)
    first = run_step(ctx, "vibe_vfa")
    second = run_step(ctx, "vibe_vfa")
    for series in (first, second):
        assert len(series) >= 2 and all(s.sequence == "vibe_pre" for s in series)
        assert len({(s.acq["tr"], s.acq["te"]) for s in series}) == 1
        assert len({s.acq["fa"] for s in series}) == len(series)
        assert len({tuple(s.frames[0].iop) for s in series}) == 1
    assert first[0].acq["tr"] != second[0].acq["tr"]  # each set draws its own timing


def test_ge_swan_seldom_has_a_processed_swi_series():
    # GE's SWAN is read from its magnitude images; a processed SWI series is often absent (vendor
    # notes), unlike Siemens' SWI_Images, which a SWI export always has unless the site drops it.
    from training.synth.generator import run_step
    present = {}
    for vendor in ("GE", "Siemens"):
        found = 0
        for seed in range(12):
            ctx = _ctx(vendor, seed=seed)
            series = run_step(ctx, "swi")
            assert series and {s.sequence for s in series} <= {"swi", "swi_mag", "swi_phase", "swi_mip"}
            found += any(s.sequence == "swi" for s in series)
        present[vendor] = found
    assert present["GE"] <= 6 < present["Siemens"], present


def test_post_contrast_t1_in_further_planes():
    # Post-contrast 2D T1 are often run in a second or third plane, often with the same protocol;
    # each further plane is one not yet used, and every series is post-contrast.
    from training.synth.generator import run_step
    same_protocol = 0
    for seed in range(8):
        ctx = _ctx("Siemens", seed=seed)
        ctx.post = True
        first = run_step(ctx, "t1_post")[0]
        further = run_step(ctx, "t1_post_planes")
        assert 1 <= len(further) <= 2 and all(s.sequence == "t1_post" and s.post_contrast for s in further)
        planes = ctx.post_planes["t1"]
        assert len(planes) == len(set(planes)) == 1 + len(further)
        assert all(tuple(s.frames[0].iop) != tuple(first.frames[0].iop) for s in further)
        same_protocol += all(further[0].acq[k] == first.acq[k] for k in ("tr", "te", "fa"))
    assert 1 <= same_protocol <= 7
