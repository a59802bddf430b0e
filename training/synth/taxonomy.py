"""The class identifiers of the mrsort interface (BRIEF.md). Keep them exactly."""

SEQUENCES = (
    "t1_pre", "t1_post", "t1_iac_pre", "t1_iac_post", "t1_3d_pre", "t1_3d_post",
    "vibe_pre", "vibe_post", "t2", "t2_haste", "t2_3d", "ciss", "flair", "flair_3d",
    "dwi", "adc", "swi", "swi_mag", "swi_phase", "swi_mip", "perfusion", "tof",
    "tof_mip", "scout", "other",
)
ORIENTATIONS = ("axial", "coronal", "sagittal", "oblique")
VENDORS = ("Siemens", "GE", "Philips", "Canon")

POST_CONTRAST = {"t1_post", "t1_iac_post", "t1_3d_post", "vibe_post"}
