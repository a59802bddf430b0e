"""Vendor metadata: what Siemens, GE, Philips and Canon scanners write for each class.

Sources: shared/notes/vendor-metadata.md (values marked [dev] were seen in
shared/realdata; [typ] ones are plausible and kept as variety, never as the
only form).  :func:`series_meta` turns a :class:`~training.synth.series.Series`
into header values; the DICOM writer only serialises them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# ----------------------------------------------------------------------------- scanners

SCANNERS = {
    "Siemens": [
        # model, field, software, xa (enhanced by default)
        ("Avanto", 1.5, "syngo MR B17", False), ("Aera", 1.5, "syngo MR E11", False), ("MAGNETOM Sola", 1.5, "syngo MR XA31", True),
        ("TrioTim", 3.0, "syngo MR B17", False), ("Skyra", 3.0, "syngo MR E11", False), ("Prisma", 3.0, "syngo MR E11", False),
        ("Verio", 3.0, "syngo MR B19", False), ("MAGNETOM Vida", 3.0, "syngo MR XA30", True),
        ("MAGNETOM Prisma Fit", 3.0, "syngo MR XA30", True),  # Prismas upgraded to XA write enhanced files [dev]
    ],
    "GE": [
        ("Signa HDxt", 1.5, "15\\LX\\MR Software release:15.0_M4A_0947.a", False),
        ("Optima MR450w", 1.5, "25\\LX\\MR Software release:DV25.0_R02_1549.b", False),
        ("DISCOVERY MR750", 3.0, "27\\LX\\MR Software release:DV26.0_R01_1725.a", False),
        ("SIGNA Premier", 3.0, "28\\LX\\MR29.1_EA_2038.a", False),
        ("SIGNA Artist", 1.5, "28\\LX\\MR29.1_EA_2038.a", False),
    ],
    "Philips": [
        ("Achieva", 1.5, "3.2.3\\3.2.3.1", False), ("Ingenia", 1.5, "5.4.1\\5.4.1.0", True),
        ("Achieva dStream", 3.0, "5.3.0\\5.3.0.3", True), ("Ingenia", 3.0, "5.7.1\\5.7.1.2", True),
        ("Ingenia Elition X", 3.0, "5.7.1\\5.7.1.2", True),
    ],
    "Canon": [
        ("Vantage Titan", 1.5, "V6.0", False), ("Vantage Orian", 1.5, "V7.0", False), ("Vantage Galan 3T", 3.0, "V8.0", False),
    ],
}
MANUFACTURER = {"Siemens": "SIEMENS", "GE": "GE MEDICAL SYSTEMS", "Philips": "Philips Medical Systems", "Canon": "CANON_MEC"}


@dataclass
class Scanner:
    vendor: str
    manufacturer: str
    model: str
    field: float
    software: str
    enhanced_capable: bool
    institution: str
    station: str
    desc_style: int           # site habit for descriptions
    enhanced_rate: float = 0.0


def pick_scanner(rng, vendor: str, field: float | None = None) -> Scanner:
    opts = [s for s in SCANNERS[vendor] if field is None or s[1] == field]
    model, fld, sw, enh = opts[rng.integers(len(opts))]
    manu = MANUFACTURER[vendor]
    if vendor == "Siemens" and enh:
        manu = "Siemens Healthineers" if rng.random() < 0.7 else "SIEMENS"
    if vendor == "Philips" and rng.random() < 0.2:
        manu = "Philips"
    if vendor == "Canon" and rng.random() < 0.35:
        manu = "TOSHIBA"
    inst = rng.choice(["General Hospital", "University Medical Center", "Imaging Institute", "Radiology Clinic", "Neuro Center", ""])
    rate = 0.0
    if vendor == "Siemens" and enh:
        rate = 0.85
    elif vendor == "Philips" and enh:
        rate = 0.3
    return Scanner(vendor, manu, model, float(fld), sw, enh, str(inst), f"{vendor[:3].upper()}MR{rng.integers(1, 9)}",
                   int(rng.integers(0, 3)), rate)


# ----------------------------------------------------------------------------- per-class tags

@dataclass
class Meta:
    image_type: list
    scanning_sequence: str | None
    sequence_variant: str | None
    scan_options: str
    mr_acq_type: str | None
    sequence_name: str | None
    description: str
    protocol: str
    private: list = field(default_factory=list)  # (group, creator, elem, VR, value)
    frame_type_tokens: dict = field(default_factory=dict)
    contrast: str = "T1"     # enhanced AcquisitionContrast
    pulse_name: str = ""     # enhanced (0018,9005)
    echo_pulse: str = "SPIN"
    comments: str | None = None


SV_SIEMENS = {
    "se": ("SE", "SK\\SP", ""), "tse": ("SE", "SK\\SP", ""), "gre": ("GR", "SP\\OSP", ""),
    "t1flair": ("SE\\IR", "SK\\SP\\MP", "IR"), "mprage": ("GR\\IR", "SK\\SP\\MP", "IR"), "flash3d": ("GR", "SP", ""),
    "vibe": ("GR", "SP", "SAT1"), "haste": ("SE", "SK\\SP", "PFP"), "space": ("SE", "SK\\SP\\OSP", ""),
    "ciss": ("GR", "SS", ""), "trufi": ("GR", "SS", ""), "flair": ("SE\\IR", "SK\\SP\\MP", "IR"), "spcir": ("SE\\IR", "SK\\SP\\MP", "IR"),
    "dwi": ("EP", "SK\\SP", "PFP\\FS"), "swi": ("GR", "SP", "FC"), "dsc": ("EP", "SK", "FS"), "bold": ("EP", "SK", "FS"),
    "asl": ("EP", "SK", ""), "fieldmap": ("GR", "SP", ""), "tof": ("GR", "SP", ""), "scout_gre": ("GR", "SP\\OSP", ""),
    "scout_3d": ("GR", "SP", "PFP"), "scout_bssfp": ("GR", "SS", ""), "scout_ssfse": ("SE", "SK\\SP", "PFP"), "nonhead": ("SE", "SK\\SP", ""),
    "fa": ("EP", "SK\\SP", "PFP\\FS"), "fmap_epi": ("EP", "SK", "FS"),
}
SEQNAME_SIEMENS = {
    "se": "*se2d1", "tse": "*tse2d1_{etl}", "gre": "*fl2d1", "t1flair": "*tir2d1_{etl}", "mprage": "*tfl3d1_16ns",
    "flash3d": "*fl3d1", "vibe": "*fl3d1", "haste": "*h2d1_{etl}", "space": "*spc_{etl}ns", "ciss": "*ci3d1", "trufi": "*tfi3d1",
    "flair": "*tir2d1_{etl}", "spcir": "*spcir_{etl}ns", "swi": "*swi3d1r", "dsc": "*epfid2d1_{m}", "bold": "*epfid2d1_{m}",
    "asl": "ep2d_pcasl", "fieldmap": "*fm2d2r", "tof": "*fl3d1r_t70", "scout_gre": "*fl2d1", "scout_3d": "*fl3d1_ns",
    "scout_bssfp": "*tfi2d1", "scout_ssfse": "*h2d1_128", "nonhead": "*tse2d1_{etl}", "fa": "*ep_b0_1000",
    "fmap_epi": "epse2d1_{m}",  # CMRR SpinEchoFieldMap [typ]
}
GE_PSD = {
    "se": ("SE", "SE"), "tse": ("fse-xl", "FSE"), "gre": ("fgre", "FGRE"), "t1flair": ("fse-xl", "FSE"), "mprage": ("efgre3d", "EFGRE3D"),
    "bravo": ("efgre3d", "EFGRE3D"), "flash3d": ("efgre3d", "EFGRE3D"), "vibe": ("efgre3d", "LAVA"), "haste": ("ssfse", "SSFSE"),
    "space": ("Cube", "3DFSE"), "ciss": ("fiesta3d", "FIESTA-C"), "trufi": ("fiesta3d", "FIESTA"), "flair": ("fse-xl", "FSE-IR"),
    "spcir": ("Cube", "3DFSE"), "dwi": ("epi2", "EPI2"), "swi": ("swan", "SWAN"), "dsc": ("epi", "EPI"), "bold": ("epiRT", "EPI"),
    "asl": ("3dasl", "3DASL"), "fieldmap": ("B0map", "B0MAP"), "tof": ("tof3d", "TOF3D"), "scout_gre": ("fgre", "3PLANE"),
    "scout_ssfse": ("ssfse", "3PLANE"), "scout_bssfp": ("fiesta", "3PLANE"), "scout_3d": ("fgre", "3PLANE"), "nonhead": ("fse-xl", "FSE"),
    "fa": ("epi2", "EPI2"), "fmap_epi": ("research/ABCD/epi_pepolar", "EPI"),
}
GE_SS = {
    "se": ("SE", "SK", "FILTERED_GEMS"), "tse": ("SE", "SK", "FAST_GEMS\\FILTERED_GEMS"), "gre": ("GR", "SS\\SP", "FAST_GEMS"),
    "t1flair": ("SE\\IR", "SK", "FAST_GEMS\\T1FLAIR_GEMS\\IR_GEMS"), "bravo": ("GR", "SS\\SP\\SK", "FAST_GEMS\\EDR_GEMS\\ACC_GEMS"),
    "mprage": ("GR", "SS\\SP\\SK", "FAST_GEMS\\EDR_GEMS\\ACC_GEMS"), "flash3d": ("GR", "SS\\SP", "FAST_GEMS\\EDR_GEMS"),
    "vibe": ("GR", "SS\\SP", "FAST_GEMS\\FLEX_GEMS"), "haste": ("SE", "SK", "FAST_GEMS\\SS_GEMS"),
    "space": ("SE", "SK", "FAST_GEMS\\EDR_GEMS"), "ciss": ("GR", "SS", "FAST_GEMS"), "trufi": ("GR", "SS", "FAST_GEMS"),
    "flair": ("SE\\IR", "SK", "FAST_GEMS\\T2FLAIR_GEMS\\IR_GEMS"), "spcir": ("SE\\IR", "SK", "FAST_GEMS\\T2FLAIR_GEMS\\IR_GEMS"),
    "dwi": ("EP\\SE", "NONE", "EPI_GEMS\\FS"), "swi": ("GR", "SS\\SP", "FAST_GEMS\\FC"), "dsc": ("EP\\GR", "SS", "EPI_GEMS\\MP_GEMS"),
    "bold": ("EP\\GR", "SS", "EPI_GEMS\\ACC_GEMS\\PFF\\FS"), "asl": ("SE", "SK", "FAST_GEMS"), "fieldmap": ("RM", "NONE", "VB_GEMS"),
    "tof": ("GR", "SS\\SP", "VASCTOF_GEMS\\RAMP_IS_GEMS"), "scout_gre": ("GR", "SS", "FAST_GEMS"), "scout_3d": ("GR", "SS", "FAST_GEMS"),
    "scout_ssfse": ("SE", "SK", "FAST_GEMS\\SS_GEMS"), "scout_bssfp": ("GR", "SS", "FAST_GEMS"), "nonhead": ("SE", "SK", "FAST_GEMS"),
    "fa": ("EP\\SE", "NONE", "EPI_GEMS"), "fmap_epi": ("EP\\RM", "NONE", "EPI_GEMS\\FS"),
}
PHILIPS = {
    # family: (SS, SV, ST (2001,1020), class token X, Y)
    "se": ("SE", "SK", "SE", "SE", "SE"), "tse": ("SE", "SK", "TSE", "SE", "SE"), "gre": ("GR", "SP", "FFE", "FFE", "FFE"),
    "t1flair": ("IR", "SK", "IR", "IR", "IR"), "tfe": ("GR", "MP", "T1TFE", "FFE", "FFE"), "mprage": ("GR", "MP", "T1TFE", "FFE", "FFE"),
    "flash3d": ("GR", "SP", "T1FFE", "FFE", "FFE"), "vibe": ("GR", "SP", "T1FFE", "FFE", "FFE"), "haste": ("SE", "SK", "TSE", "SE", "SE"),
    "space": ("SE", "SK", "TSE", "SE", "SE"), "ciss": ("GR", "SS", "B-TFE", "FFE", "FFE"), "trufi": ("GR", "SS", "B-TFE", "FFE", "FFE"),
    "flair": ("SE\\IR", "SK", "IR", "IR", "IR"), "spcir": ("IR", "SK", "IR", "IR", "IR"), "dwi": ("SE", "SK", "DwiSE", "SE", "SE"),
    "swi": ("GR", "SP", "FFE", "FFE", "FFE"), "dsc": ("GR", "SK", "FEEPI", "FFE", "FFE"), "bold": ("GR", "SK", "FEEPI", "FFE", "FFE"),
    "asl": ("SE", "SK", "GraSE", "SE", "SE"), "fieldmap": ("GR", "SP", "T1FFE", "FFE", "FFE"), "tof": ("GR", "SP", "FFE", "FFE", "FFE"),
    "scout_gre": ("GR", "SP", "FFE", "FFE", "FFE"), "scout_bssfp": ("GR", "SS", "B-TFE", "FFE", "FFE"), "scout_ssfse": ("SE", "SK", "TSE", "SE", "SE"),
    "scout_3d": ("GR", "SP", "FFE", "FFE", "FFE"), "nonhead": ("SE", "SK", "TSE", "SE", "SE"), "fa": ("SE", "SK", "DwiSE", "SE", "SE"),
}
CANON = {
    "se": ("SE", "SK"), "tse": ("SE", "SK"), "gre": ("GR", "SP"), "t1flair": ("SE\\IR", "SK"), "mprage": ("GR", "SP\\MP"),
    "flash3d": ("GR", "SP"), "vibe": ("GR", "SP"), "haste": ("SE", "SK"), "space": ("SE", "SK"), "ciss": ("GR", "SS"),
    "trufi": ("GR", "SS"), "flair": ("SE\\IR", "SK"), "spcir": ("SE\\IR", "SK"), "dwi": ("SE\\EP", "SK"), "swi": ("GR", "SP"),
    "dsc": ("GR\\EP", "SK"), "bold": ("GR\\EP", "SK"), "asl": ("SE\\EP", "SK"), "fieldmap": ("GR", "SP"), "tof": ("GR", "SP"),
    "scout_gre": ("GR", "SP"), "scout_ssfse": ("SE", "SK"), "scout_bssfp": ("GR", "SS"), "scout_3d": ("GR", "SP"), "nonhead": ("SE", "SK"),
    "fa": ("SE\\EP", "SK"),
}

# descriptions: {p} plane token; one list per (class or subtype), shared by vendors with style variants
DESC = {
    "t1_pre": {"Siemens": ["t1_se_{p}", "t1_tse_{p}", "t1_fl2d_{p}", "t1_tirm_{p}", "T1_{P}", "t1_{p}_FS"],
               "GE": ["{P} T1 SE", "{P} T1 FLAIR", "{P} T1", "{P} T1 FSE"], "Philips": ["T1W_SE", "T1W_TSE_{p}", "T1W_IR", "T1W_FFE", "T1_{p}"],
               "Canon": ["T1 SE {P}", "T1 FLAIR {P}", "T1WI_{p}"]},
    "t1_post": {"Siemens": ["t1_se_{p}_+c", "t1_tse_{p}_KM", "t1_se_{p} POST", "t1_fs_{p}+C", "T1_{P}_Gd"],
                "GE": ["{P} T1 +C", "{P} T1 SE POST", "{P} T1 FLAIR +C", "POST {P} T1"], "Philips": ["T1W_SE+C", "T1W_TSE_{p}_GD", "T1_{p}_post", "T1W_SPIR_GD"],
                "Canon": ["T1 SE {P} +C", "T1 {P} CE"]},
    "t1_iac_pre": {"Siemens": ["t1_tse_{p}_3mm_IAC", "t1_se_{p}_IAM", "IAC_t1_{p}"], "GE": ["{P} T1 IAC", "{P} T1 FSE IACs", "T1 CPA {P}"],
                   "Philips": ["T1W_IAC_{p}", "T1_IAM_{p}"], "Canon": ["T1 IAC {P}"]},
    "t1_iac_post": {"Siemens": ["t1_tse_{p}_fs_IAC_+c", "t1_se_{p}_IAM_KM", "IAC_t1_fs_{p}_post"], "GE": ["{P} T1 FS IAC +C", "POST {P} T1 IAC"],
                    "Philips": ["T1W_IAC_{p}_SPIR_GD", "T1_IAM_{p}+C"], "Canon": ["T1 IAC {P} +C"]},
    "t1_3d_pre": {"Siemens": ["t1_mprage_sag_p2_iso", "T1_mprage_ns_sag_p2_iso 1.0mm_192", "anat-T1w_acq-tfl", "t1_mprage_{p}", "MPRAGE"],
                  "GE": ["Sag 3D BRAVO", "Accelerated SAG IR-SPGR", "{P} FSPGR 3D", "3D T1 BRAVO"], "Philips": ["sT1W_3D_TFE", "T1_TFE1.0_Iso", "3D_T1_TFE_{p}", "ADNI_Sag3D MPRAGE"],
                  "Canon": ["3D T1 MPRAGE SAG", "3D T1 {P}"]},
    "t1_3d_post": {"Siemens": ["t1_mprage_{p}_+c", "t1_mprage_sag_p2_iso_KM", "sag 3d gre +c", "T1_3D_POST", "t1_fl3d_{p}_Gd"],
                   "GE": ["SAG FSPGR BRAVO +C", "{P} 3D BRAVO POST", "POST 3D T1"], "Philips": ["sT1W_3D_TFE_GD", "T1_TFE_{p}+C", "3D_T1_post"],
                   "Canon": ["3D T1 MPRAGE +C", "3D T1 {P} CE"]},
    "vibe_pre": {"Siemens": ["t1_vibe_fs_{p}", "t1_vibe_{p}", "ax 5 flip", "t1_vibe_dyn_pre"], "GE": ["{P} LAVA", "{P} LAVA-Flex", "3D SPGR FS {P}"],
                 "Philips": ["THRIVE_{p}", "T1W_3D_FFE_SPIR", "mDIXON_{p}"], "Canon": ["3D FE FS {P}", "Quick 3D {P}"]},
    "vibe_post": {"Siemens": ["t1_vibe_fs_{p}_+c", "t1_vibe_{p}_post", "GRASP_{p}_KM", "t1_vibe_dyn"], "GE": ["{P} LAVA +C", "{P} LAVA-Flex POST", "WATER: {P} LAVA +C"],
                  "Philips": ["THRIVE_{p}_GD", "T1W_3D_FFE_SPIR+C", "mDIXON_post"], "Canon": ["3D FE FS {P} +C"]},
    "t2": {"Siemens": ["t2_tse_{p}", "t2_tse_{p}_p2", "t2_tse_{p}_512", "T2_{P}", "t2_blade_{p}"], "GE": ["{P} T2 FSE", "{P} T2 FRFSE", "{P} T2 PROPELLER", "{P} T2"],
           "Philips": ["T2W_TSE", "T2_TSE_{p}", "T2W_TSE_{p}_SENSE"], "Canon": ["T2 FSE {P}", "T2WI_{p}"]},
    "t2_haste": {"Siemens": ["t2_haste_{p}", "HASTE_{p}", "t2_haste_{p}_mbh"], "GE": ["{P} SSFSE T2", "{P} SSFSE", "SSFSE {P} fast"],
                 "Philips": ["T2W_SSH_{p}", "sshTSE_{p}"], "Canon": ["FASE {P}", "FASE2D {P}"]},
    "t2_3d": {"Siemens": ["t2_space_sag_p2_iso", "t2_spc_{p}_iso", "sag_t2tse"], "GE": ["Sag CUBE T2", "{P} CUBE T2"], "Philips": ["3D_T2W_VISTA", "T2W_3D_TSE_{p}"],
              "Canon": ["3D T2 {P}"]},
    "ciss": {"Siemens": ["t2_ci3d_{p}_iso_0.5", "CISS_IAC", "t2_trufi3d_{p}", "ciss_{p}"], "GE": ["3D FIESTA-C {P} IAC", "FIESTA {P}"], "Philips": ["3D_bFFE", "DRIVE_IAC", "bFFE_IAC_{p}"],
             "Canon": ["CISS", "True SSFP {P}"]},
    "flair": {"Siemens": ["t2_tirm_{p}_dark-fluid", "t2_flair_{p}", "FLAIR_{P}", "t2_tirm_{p}_fs"], "GE": ["{P} T2 FLAIR", "{P} FLAIR FS", "{P} FLAIR"],
              "Philips": ["FLAIR_longTR", "T2W_FLAIR", "FLAIR_{p}"], "Canon": ["FLAIR {P}", "FastFLAIR {P}"]},
    "flair_3d": {"Siemens": ["t2_space_dark-fluid_sag_p2_iso", "t2_spcir_{p}", "sag_t2flair", "3D FLAIR"], "GE": ["Sag CUBE FLAIR", "{P} CUBE FLAIR"],
                 "Philips": ["3D_FLAIR_VISTA", "FLAIR_3D_{p}"], "Canon": ["3D FLAIR"]},
    "dwi": {"Siemens": ["ep2d_diff_{p}", "ep2d_diff_mddw_20_p2", "DWI_{p}", "ep2d_diff_3scan_trace_p2", "ep2d_diff_{p}_TRACEW", "DWI_dir80_PA"],
            "GE": ["{P} DWI", "{P} DWI B1000", "Ax DWI Asset", "DTI"], "Philips": ["DWI_SENSE", "dti_{p}", "DT_HIGH_32DIR", "DWI_b1000"], "Canon": ["DWI {P}", "DWI b1000"]},
    "adc": {"Siemens": ["ep2d_diff_{p}_ADC", "DWI_dir80_PA_ADC", "ADC"], "GE": ["Apparent Diffusion Coefficient (mm2/s)", "ADC", "{P} DWI ADC"],
            "Philips": ["dADC", "DWI_SENSE_ADC", "ADC"], "Canon": ["ADC", "eADC"]},
    "swi": {"Siemens": ["SWI_Images", "swi_{p}_SWI"], "GE": ["SWAN", "{P} SWAN processed", "SWI"], "Philips": ["SWIp", "SWIp_{p}"], "Canon": ["FSBB", "SWI"]},
    "swi_mag": {"Siemens": ["Mag_Images", "swi_{p}_Mag"], "GE": ["{P} SWAN", "SWAN mag"], "Philips": ["SWIp_M", "SWIp"], "Canon": ["SWI mag"]},
    "swi_phase": {"Siemens": ["Pha_Images", "swi_{p}_Pha"], "GE": ["{P} SWAN phase", "SWAN PHASE"], "Philips": ["SWIp_P", "SWIp phase"], "Canon": ["SWI phase"]},
    "swi_mip": {"Siemens": ["mIP_Images(SW)", "MinIP_{p}"], "GE": ["SWAN MinIP", "{P} minIP"], "Philips": ["SWIp_mIP", "MinIP"], "Canon": ["minIP"]},
    "perfusion": {"Siemens": ["ep2d_perf", "ep2d_perf_p2", "PERFUSION", "DSC_{p}"], "GE": ["{P} PERFUSION", "PWI", "Perfusion DSC"],
                  "Philips": ["PERF_DSC", "dyn_perf", "PWI_FEEPI"], "Canon": ["Perfusion", "DSC {P}"]},
    "tof": {"Siemens": ["tof_3d_multi-slab", "TOF_3D_multi-slab", "tof_fl3d_{p}_p2"], "GE": ["{P} 3D TOF", "3D TOF COW", "MRA TOF"], "Philips": ["TOF_3D_multi", "sTOF_COW"],
            "Canon": ["TOF 3D", "MRA TOF"]},
    "tof_mip": {"Siemens": ["tof_3d_multi-slab_MIP_{P3}", "TOF_MIP_SAG", "MIP"], "GE": ["{P} 3D TOF MIP", "COLLAPSE", "MIP"], "Philips": ["TOF_MIP", "MIP_rotate", "sTOF_COW_MIP"],
                "Canon": ["MIP", "TOF MIP"]},
    "scout": {"Siemens": ["localizer", "AAHead_Scout_32ch-head-coil", "AAHead_Scout_64ch-head-coil", "Localizer_3pl"], "GE": ["3 Plane Loc", "3-Plane Loc SSFSE", "Localizer"],
              "Philips": ["Survey", "SmartSurvey", "Survey_32ch_HeadCoil"], "Canon": ["Locator", "3-plane Locator"]},
    "other": {"Siemens": ["gre_field_mapping", "ep2d_bold_moco", "pcasl_2d", "relCBF", "func-bold_task-rest_run-1", "fMRI_{p}", "DTI_FA", "MoCoSeries"],
              "GE": ["B0map", "Axial EPI-FMRI", "3D ASL", "fMRI Multiphase", "FA map", "Screen Save"], "Philips": ["B0 map", "fcMRI", "3DpCASL", "pCASL", "FA", "WIP SOURCE - 3DpCASL"],
              "Canon": ["Field map", "BOLD", "ASL", "FA"]},
}
OTHER_DESC = {
    "bold": ["ep2d_bold", "rest_fMRI", "fMRI_{p}", "func_task-oneback_run-1", "Axial EPI-FMRI", "BOLD_rest", "sag_asc_35sl", "fcMRI"],
    "asl": ["pcasl_2d_m0", "3D_pCASL_6mm", "ASL", "relCBF", "pCASL CBF", "3D ASL"], "fieldmap": ["gre_field_mapping", "B0map", "B0Map (GRE)", "fcMRI Field Mapping", "FM_cv12_1_3mm", "fmap"],
    "fa": ["DTI_FA", "FA", "ColFA", "DWI_dir80_TENSOR_B0", "dti_FA"], "screenshot": ["Screen Save", "Screenshots", "Evidence", "Summary", "Perfusion Summary", ""],
    "nonhead": ["T2_sag_spine", "PD_FS_cor_knee", "T1_tra_abd", "Ax T2 SSFSE abdomen", "t2_tse_sag", "Cor PD FS", "Ax_localiser_BH"],
}
PLANE_TOK = {
    "Siemens": {"axial": "tra", "coronal": "cor", "sagittal": "sag", "oblique": "obl"},
    "GE": {"axial": "Ax", "coronal": "Cor", "sagittal": "Sag", "oblique": "Obl"},
    "Philips": {"axial": "ax", "coronal": "cor", "sagittal": "sag", "oblique": "obl"},
    "Canon": {"axial": "AX", "coronal": "COR", "sagittal": "SAG", "oblique": "OBL"},
}
MISLEADING = ["T1", "t2_tse_tra", "FLAIR", "Ax DWI", "localizer", "REPEAT", "Series 5", "nativ", "test", "copy", "MPR", "3D"]


def description(rng, seq: str, subtype: str, vendor: str, plane: str, scanner: Scanner) -> str:
    """A noisy SeriesDescription in the vendor's and the site's style."""
    r = rng.random()
    if r < 0.03:
        return ""
    if r < 0.06:
        return str(rng.choice(MISLEADING))
    if seq == "other":
        key = subtype.split("_")[0]
        key = {"fieldmap": "fieldmap", "fa": "fa", "asl": "asl"}.get(key, key)
        pool = OTHER_DESC.get(key, DESC["other"][vendor])
    else:
        pool = DESC[seq][vendor]
        if rng.random() < 0.12:  # a site that uses another vendor's names
            pool = DESC[seq][str(rng.choice(list(DESC[seq].keys())))]
    d = str(rng.choice(pool))
    tok = PLANE_TOK[vendor].get(plane, "tra")
    d = d.replace("{p}", tok).replace("{P}", tok.capitalize() if vendor != "Canon" else tok.upper())
    d = d.replace("{P3}", {"axial": "TRA", "coronal": "COR", "sagittal": "SAG"}.get(plane, "TRA"))
    if scanner.desc_style == 1:
        d = d.upper()
    elif scanner.desc_style == 2 and rng.random() < 0.5:
        d = d.replace("_", " ")
    if rng.random() < 0.05:
        d = d + str(rng.choice([" REPEAT", "_2", " moco", " (copy)", "_ND"]))
    return d[:64]


def _canon_series_type(seq):
    return seq


def series_meta(rng, ser, scanner: Scanner, enhanced: bool) -> Meta:
    """Vendor-specific header values of one series."""
    v = scanner.vendor
    fam = ser.acq.get("family", "se")
    seq = ser.sequence
    sub = ser.subtype
    acq = ser.acq
    plane = ser.orientation or "axial"
    desc = description(rng, seq, sub, v, plane, scanner)
    proto = desc
    if v == "Philips" and rng.random() < 0.4:
        proto = ("WIP " if rng.random() < 0.5 else "") + desc + (" SENSE" if rng.random() < 0.5 else " CLEAR")
    mr_type = acq.get("mr_type")
    priv = []
    comments = None
    fam_key = {"bravo": "mprage", "tfe": "mprage"}.get(fam, fam)
    kind = ser.kind
    derived = ser.derived
    # ---------------------------------------------------------------- Siemens
    if v == "Siemens":
        ss, sv, so = SV_SIEMENS.get(fam_key, ("SE", "SK", ""))
        if ser.fat_sat and "FS" not in so:
            so = (so + "\\FS").strip("\\") if rng.random() < 0.8 else so
        if fam == "vibe" and ser.fat_sat:
            so = "SAT2\\FS" if rng.random() < 0.5 else "SAT1"
        etl = acq.get("etl") or 1
        m = ser.acq_matrix[0] if ser.acq_matrix else 128
        name = SEQNAME_SIEMENS.get(fam_key, "*se2d1").format(etl=etl, m=m)
        norm = ["NORM"] if rng.random() < 0.85 else []
        dis = ["DIS2D"] if (mr_type == "2D" and rng.random() < 0.4) else (["DIS3D"] if rng.random() < 0.2 else [])
        nd = ["ND"] if not dis or rng.random() < 0.5 else []
        it = ["DERIVED" if derived else "ORIGINAL", "PRIMARY", "M"] + nd + norm + dis
        if seq == "dwi":
            sv = "SK\\SP" if rng.random() < 0.6 else "SK\\SS"
            name = "*ep_b{b}t" if ser.subtype == "trace" else "*ep_b{b}#{d}"
            it = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE", "ND"] + norm
        elif seq == "adc":
            b = ser.acq.get("b_values", [0, 1000])
            name = f"*ep_b{int(b[0])}_{int(b[-1])}"
            it = ["DERIVED", "PRIMARY", "DIFFUSION", "ADC", "ND"] + norm
        elif seq == "swi_phase" or kind == "P":
            it = ["ORIGINAL", "PRIMARY", "P", "ND"]
        elif seq == "swi":
            it = ["ORIGINAL", "PRIMARY", "M", "SWI", "ND"] + norm
        elif seq == "swi_mip":
            it = [str(rng.choice(["ORIGINAL", "DERIVED"])), "PRIMARY", "MNIP", "ND"] + norm
        elif seq == "perfusion":
            it = ["ORIGINAL", "PRIMARY", "PERFUSION", "NONE", "ND"] + norm
        elif seq == "tof_mip":
            if sub == "rotating":
                it = ["DERIVED", "SECONDARY", "PROJECTION IMAGE", "CSA MIP", "CSAPARALLEL", "M", "ND"] if rng.random() < 0.4 else ["ORIGINAL", "PRIMARY", "MIP_SAG", "ND"]
            else:
                it = ["ORIGINAL", "PRIMARY", "MIP_" + sub[-3:].upper(), "ND"] + norm + ["DIS2D"]
        elif sub.startswith("mpr_"):
            # AAHead_Scout's automatic MPR children are DERIVED\PRIMARY (notes [dev]); DERIVED\SECONDARY\MPR\CSA MPR
            # is a reformat made by a user on the workstation, which keeps its source's class, so scouts never carry it
            it = [["DERIVED", "PRIMARY", "MPR", "ND", "NORM", "DIS3D"], ["DERIVED", "PRIMARY", "MPR", "NORM", "DIS3D", "MFSPLIT"],
                  ["DERIVED", "PRIMARY", "MPR", "RESAMPLED"], ["DERIVED", "PRIMARY", "MPR", "ND", "NORM"]][int(rng.integers(4))]
        elif sub.startswith("asl"):
            it = ["DERIVED", "PRIMARY", "ASL", "RCBF"] if sub == "asl_cbf" else ["ORIGINAL", "PRIMARY", "ASL", "ND"] + norm
            name = "ep2d_pcasl" if sub != "asl_cbf" else "*ep2d_pcasl"
        elif sub == "fieldmap_epi":
            it = ["ORIGINAL", "PRIMARY", "M", "ND"] + norm
        elif sub.startswith("fieldmap"):
            it = ["ORIGINAL", "PRIMARY", "P" if kind == "P" else "M", "ND"]
        elif sub == "fa_tensor_b0":
            it = ["DERIVED", "PRIMARY", "DIFFUSION", "TENSOR_B0", "ND"] + norm
        elif sub.startswith("fa"):
            it = ["DERIVED", "PRIMARY", "DIFFUSION", "FA", "ND"] + norm
        elif sub == "bold":
            it = ["ORIGINAL", "PRIMARY", "M", "ND"] + norm
        if acq.get("mosaic"):
            it = it + ["MOSAIC"]
        if enhanced:  # XA: enhanced-style top level, classic tokens only in private tags
            flav = {"dwi": "DIFFUSION", "adc": "DIFFUSION", "perfusion": "PERFUSION"}.get(seq, "M")
            if sub == "bold":
                flav = "FMRI"
            if kind == "P":
                flav = "P"
            it = ["DERIVED" if derived else "ORIGINAL", "PRIMARY", flav, "ADC" if seq == "adc" else "NONE"]
            if seq == "swi_mip":
                it = ["DERIVED", "PRIMARY", "MNIP", "NONE"]
            if seq == "tof_mip":
                it = ["DERIVED", "PRIMARY", "MIP", "NONE"]
            if seq == "swi":
                it = ["ORIGINAL", "PRIMARY", "M", "SWI"]
            if sub == "fa_tensor_b0":  # XA keeps the derived diffusion map type: D\P\DIFFUSION\TENSOR_B0 [dev]
                it = ["DERIVED", "PRIMARY", "DIFFUSION", "TENSOR_B0"]
            elif sub.startswith("fa") and kind != "RGB":
                it = ["DERIVED", "PRIMARY", "DIFFUSION", "FA"]
            elif sub.startswith("mpr_"):  # XA MPR children: D\P\MPR\RESAMPLED [dev]
                it = ["DERIVED", "PRIMARY", "MPR", "RESAMPLED"]
        if seq == "dwi" and not enhanced:
            pass
        meta = Meta(it, ss, sv, so, mr_type, name, desc, proto, priv)
        if mr_type is None:
            meta.scanning_sequence = meta.sequence_variant = meta.sequence_name = None
    # ---------------------------------------------------------------- GE
    elif v == "GE":
        ss, sv, so = GE_SS.get(fam if fam in GE_SS else fam_key, ("SE", "SK", ""))
        if fam == "fmap_epi" and rng.random() < 0.6:
            so = "SAT_GEMS\\MP_GEMS\\" + so
        if ser.fat_sat and "FS" not in so:
            so = so + "\\FS"
        it = ["ORIGINAL", "PRIMARY", "OTHER"]
        if sub == "bold":
            it = ["ORIGINAL", "PRIMARY", "EPI", "NONE"]
        if seq == "adc" or sub == "asl_cbf" or sub.startswith("fa"):
            it = ["DERIVED", "SECONDARY", "PROCESSED"] if rng.random() < 0.6 else ["DERIVED", "PRIMARY", "OTHER"]
        elif seq == "swi_mip":
            it = ["DERIVED", "SECONDARY", "REFORMATTED", "MIN IP"]
        elif seq == "tof_mip":
            it = ["DERIVED", "PRIMARY", "PROJECTION IMAGE", "COLLAPSE"] if rng.random() < 0.5 else ["DERIVED", "SECONDARY", "REFORMATTED", "MIP"]
        elif seq == "swi":
            it = ["DERIVED", "PRIMARY", "OTHER"] if rng.random() < 0.5 else ["ORIGINAL", "PRIMARY", "OTHER"]
        elif sub.startswith("mpr_"):
            it = ["DERIVED", "SECONDARY", "REFORMATTED", "AVERAGE"]
        psd = GE_PSD.get(fam if fam in GE_PSD else fam_key, ("fse", "FSE"))
        priv.append((0x0019, "GEMS_ACQU_01", 0x9C, "LO", psd[0]))
        priv.append((0x0019, "GEMS_ACQU_01", 0x9E, "LO", psd[1]))
        plane_code = {"axial": 2, "sagittal": 4, "coronal": 8, "oblique": 16}.get(plane, 16)
        if sub in ("3plane",):
            plane_code = 256
        priv.append((0x0027, "GEMS_IMAG_01", 0x35, "SS", plane_code))
        cplx = 1 if kind == "P" else 0
        priv.append((0x0043, "GEMS_PARM_01", 0x2F, "SS", cplx))
        meta = Meta(it, ss, sv, so, mr_type, None, desc, proto or "CV_Neuro_HH_Adv", priv)
    # ---------------------------------------------------------------- Philips
    elif v == "Philips":
        ss, sv, st_, x, y = PHILIPS.get(fam if fam in PHILIPS else fam_key, PHILIPS["se"])
        so = ("FS" if rng.random() < 0.7 else "PFP") if ser.fat_sat else str(rng.choice(["OTHER", "PFP", "FC", ""]))
        if seq == "dwi":
            it = ["ORIGINAL", "PRIMARY", "M_SE", "M", "SE"]
        elif seq == "adc":
            it = ["DERIVED", "PRIMARY", "ADC_SE", "ADC", "SE"] if rng.random() < 0.7 else ["ORIGINAL", "PRIMARY", "ADC_UNSPECIFIED", "ADC", "UNSPECIFIED"]
        elif kind == "P":
            it = ["ORIGINAL", "PRIMARY", "PHASE MAP", "P", "FFE"]
        elif seq == "swi":
            it = ["DERIVED", "PRIMARY", "SW_M", "M", "FFE"] if rng.random() < 0.5 else ["ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"]
        elif seq == "swi_mip":
            it = ["DERIVED", "PRIMARY", "MINIP", "M", "FFE"]
        elif seq == "tof_mip":
            it = ["ORIGINAL", "PRIMARY", "PROJECTION IMAGE", "M", "FFE"]
        elif seq == "perfusion":
            it = ["ORIGINAL", "PRIMARY", "PERFUSION_FFE", "PERFUSION", "FFE"] if rng.random() < 0.5 else ["ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"]
        elif sub == "asl_cbf":
            it = ["ORIGINAL", "PRIMARY", "PERFUSION_FFE", "PERFUSION", "FFE"]
        elif sub.startswith("fa"):
            it = ["DERIVED", "PRIMARY", "FA_SE", "FA", "SE"]
        elif sub.startswith("mpr_"):
            it = ["DERIVED", "PRIMARY", "MPR", "M", "FFE"]
        else:
            it = ["ORIGINAL", "PRIMARY", f"M_{x}", "M", y]
        if derived and it[0] == "ORIGINAL" and seq not in ("tof_mip",):
            it[0] = "DERIVED"
        if enhanced:
            flav = {"t2": "T2", "t2_haste": "T2", "t2_3d": "T2", "flair": "T2", "flair_3d": "T2", "dwi": "DIFFUSION", "adc": "DIFFUSION",
                    "perfusion": "PERFUSION", "tof": "TOF", "tof_mip": "TOF", "ciss": "T2"}.get(seq, "T1")
            if sub.startswith("asl"):
                flav = "PERFUSION"
            if kind == "P":
                flav = "PHASE"
            it = [it[0], "PRIMARY", flav, "ADC" if seq == "adc" else ("MIP" if seq == "tof_mip" else ("MIN_IP" if seq == "swi_mip" else "NONE"))]
        priv.append((0x2001, "Philips Imaging DD 001", 0x20, "LO", st_))
        priv.append((0x2005, "Philips MR Imaging DD 001", 0x6E, "CS", "SE" if ss.startswith("SE") or ss == "IR" else "FFE"))
        if fam in ("tfe", "mprage") and acq.get("ti"):
            priv.append((0x2001, "Philips Imaging DD 001", 0x1B, "FL", float(acq["ti"])))
        if ser.n_temporal:
            priv.append((0x2001, "Philips Imaging DD 001", 0x81, "IS", int(ser.n_temporal)))
        meta = Meta(it, ss, sv, so, mr_type, None, desc, proto, priv)
    # ---------------------------------------------------------------- Canon
    else:
        ss, sv = CANON.get(fam if fam in CANON else fam_key, ("SE", "SK"))
        it = ["DERIVED" if derived else "ORIGINAL", "PRIMARY"]
        if seq == "adc":
            it = ["DERIVED", "SECONDARY", "ADC"]
        elif seq == "tof_mip":
            it = ["DERIVED", "SECONDARY", "MIP"]
        elif seq == "swi_mip":
            it = ["DERIVED", "SECONDARY", "MINIP"]
        elif kind == "P":
            it = ["ORIGINAL", "PRIMARY", "PHASE"]
        so = "FS" if ser.fat_sat else ""
        meta = Meta(it, ss, sv, so, mr_type, None, desc, proto, priv)
    # enhanced-frame attributes
    meta.contrast = {"dwi": "DIFFUSION", "adc": "DIFFUSION", "perfusion": "PERFUSION", "tof": "FLOW_ENCODED", "tof_mip": "FLOW_ENCODED",
                     "t2": "T2", "t2_haste": "T2", "t2_3d": "T2", "flair": "T2", "flair_3d": "T2", "ciss": "T2",
                     "swi": "T2_STAR", "swi_mag": "T2_STAR", "swi_phase": "T2_STAR", "swi_mip": "T2_STAR"}.get(seq, "T1")
    pname = meta.sequence_name or (GE_PSD.get(fam_key, ("", ""))[0] if v == "GE" else fam)
    if "{" in pname or seq in ("dwi", "adc"):
        pname = f"epse2d1_{ser.acq_matrix[0] if ser.acq_matrix else 128}"
    meta.pulse_name = pname.lstrip("*")[:16] or fam
    if v == "Philips":
        meta.pulse_name = PHILIPS.get(fam if fam in PHILIPS else fam_key, PHILIPS["se"])[2]
    meta.echo_pulse = "SPIN" if (meta.scanning_sequence or "").startswith("SE") or (meta.scanning_sequence or "") == "IR" else "GRADIENT"
    if v == "Siemens" and meta.scanning_sequence == "EP":
        meta.echo_pulse = "SPIN" if seq in ("dwi", "adc") or fam in ("fmap_epi", "fa") else "GRADIENT"
    return meta
