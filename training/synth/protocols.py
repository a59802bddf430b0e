"""Clinical protocols: which series a study holds and in which order.

A protocol is a list of steps; each step names a recipe and the probability
that the site runs it.  ``inject`` marks the contrast injection: recipes
after it see ``ctx.post = True``.  Weights are chosen so that a corpus of
~200 studies holds every class at least ~60 times while the combinations and
order stay clinical (scout first, ADC with DWI, SWI family together, TOF
with its MIPs, post-contrast after injection).
"""
from __future__ import annotations

import numpy as np

PROTOCOLS = {
    # name: (weight, steps)
    "routine": (0.8, [("scout", 1.0), ("t1_pre", 0.8), ("t2", 0.95), ("flair", 0.9), ("dwi", 0.95), ("swi", 0.5),
                      ("t2_haste", 0.15), ("inject", 0.5), ("t1_post", 1.0), ("t1_post_planes", 0.4),
                      ("t1_3d_post", 0.5)]),
    "ms": (0.8, [("scout", 1.0), ("t1_3d_pre", 0.9), ("flair_3d", 0.95), ("t2_3d", 0.3), ("t2", 0.7), ("flair", 0.4), ("dwi", 0.6),
                 ("inject", 0.8), ("t1_3d_post", 0.9), ("t1_post", 0.6), ("other_fa", 0.4)]),  # DTI in MS work-ups
    "tumour": (1.1, [("scout", 1.0), ("t1_pre", 0.7), ("t1_3d_pre", 0.7), ("t2", 0.9), ("flair", 0.8), ("dwi", 0.9),
                     ("swi", 0.7), ("inject", 1.0), ("perfusion", 0.85), ("t1_post", 0.8), ("t1_post_planes", 0.35), ("t1_3d_post", 0.8),
                     ("vibe_post", 0.35), ("other_asl", 0.3), ("other_fa", 0.45)]),  # ASL; DTI for surgical planning
    "stroke": (1.2, [("scout", 1.0), ("dwi", 1.0), ("flair", 0.8), ("swi", 0.8), ("tof", 0.9), ("t2", 0.4),
                     ("other_asl", 0.25), ("inject", 0.35), ("perfusion", 1.0)]),  # ASL before any contrast
    "iac": (3.0, [("scout", 1.0), ("t2", 0.5), ("flair", 0.3), ("dwi", 0.4), ("t2_haste", 0.15), ("ciss", 0.9), ("t1_iac_pre", 1.0),
                  ("inject", 0.9), ("t1_iac_post", 1.0), ("t1_iac_post_planes", 0.5), ("t1_post", 0.4)]),
    "pediatric": (1.2, [("scout", 1.0), ("t2_haste", 0.9), ("t1_pre", 0.6), ("t2", 0.7), ("t1_3d_pre", 0.5), ("flair", 0.5),
                        ("dwi", 0.7), ("t2_3d", 0.4), ("swi", 0.3)]),
    "angio": (1.8, [("scout", 1.0), ("tof", 1.0), ("t1_pre", 0.4), ("t2", 0.3), ("dwi", 0.3), ("vibe_pre", 0.7), ("inject", 0.7),
                    ("vibe_post", 1.0), ("t1_3d_post", 0.5)]),
    "dce": (1.1, [("scout", 1.0), ("t2", 0.7), ("t1_pre", 0.5), ("vibe_vfa", 0.5), ("vibe_pre", 1.0), ("inject", 1.0), ("vibe_post", 1.0),
                   ("t1_post", 0.5)]),
    "research": (1.1, [("scout", 1.0), ("t1_3d_pre", 1.0), ("t2_3d", 0.8), ("flair_3d", 0.7), ("other_bold", 0.8),
                       ("other_fieldmap", 0.7), ("other_fieldmap", 0.4), ("other_asl", 0.5), ("dwi", 0.4), ("other_fa", 0.6), ("t2_haste", 0.2)]),
    "epilepsy": (0.6, [("scout", 1.0), ("t1_3d_pre", 1.0), ("t2_3d", 0.7), ("flair_3d", 0.7), ("t2", 0.8), ("flair", 0.7),
                        ("swi", 0.5), ("dwi", 0.5), ("other_fieldmap", 0.2), ("other_fa", 0.5)]),  # DTI for tractography
    "nonbrain": (0.25, [("scout", 0.5), ("other_nonhead", 1.0), ("other_nonhead", 0.7), ("other_nonhead", 0.4)]),
}
# extras that may be appended to any study
EXTRAS = [("other_screenshot", 0.1), ("other_nonhead", 0.04), ("t2_haste", 0.1), ("scout", 0.03), ("t1_pre", 0.1), ("t2_3d", 0.1),
          ("swi", 0.12), ("flair_3d", 0.1), ("perfusion", 0.08), ("tof", 0.05), ("ciss", 0.04), ("vibe_pre", 0.04)]
# Steps after which the patient has contrast on board (a DSC perfusion is itself a bolus).
CONTRAST_GIVEN = ("inject", "perfusion")
PRE_CONTRAST = ("t1_pre", "vibe_pre")
POST_CONTRAST = ("t1_post", "t1_iac_post", "t1_3d_post", "vibe_post")
# Further planes of a post-contrast 2D T1: only where that T1 was run.
FURTHER_PLANES = {"t1_post_planes": "t1_post", "t1_iac_post_planes": "t1_iac_post"}


def plan_study(rng: np.random.Generator):
    """Choose a protocol and the concrete list of steps for one study."""
    names = list(PROTOCOLS)
    w = np.array([PROTOCOLS[n][0] for n in names])
    name = names[rng.choice(len(names), p=w / w.sum())]
    steps = []
    for step, p in PROTOCOLS[name][1]:
        if rng.random() < p:
            steps.append(step)
    steps = [s for i, s in enumerate(steps) if s not in FURTHER_PLANES or FURTHER_PLANES[s] in steps[:i]]
    if "inject" in steps and steps[-1] == "inject":
        steps.pop()
    # A post-contrast series means the contrast was given: a protocol whose injection step was not
    # drawn still injects before its first post-contrast series, so what follows sees the contrast.
    first_post = next((i for i, s in enumerate(steps) if s in POST_CONTRAST), None)
    if first_post is not None and not any(s in CONTRAST_GIVEN for s in steps[:first_post]):
        steps.insert(first_post, "inject")
    for step, p in EXTRAS:
        if rng.random() < p:
            contrast = [i for i, s in enumerate(steps) if s in CONTRAST_GIVEN]
            if step == "scout":
                steps.insert(min(len(steps), int(rng.integers(1, 4))), "scout")  # repeated localiser
            elif step in PRE_CONTRAST and contrast:
                # A T1 acquired after the gadolinium enhances: it is post-contrast, whatever the
                # site meant. An extra pre-contrast T1 is therefore run before the injection.
                steps.insert(contrast[0], step)
            else:
                steps.append(step)
    return name, steps
