"""Data model shared by the sequence recipes, the vendor layer and the writer."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Frame:
    """One image (file or frame) of a series."""

    pixels: np.ndarray                 # float image (>= 0) or uint8 RGB (H, W, 3)
    ipp: list | None                   # ImagePositionPatient or None (screenshots)
    iop: list | None                   # ImageOrientationPatient
    instance: int                      # InstanceNumber (gaps allowed: subsampled series)
    slice_index: int = 0               # position in the acquisition (for sorting / MR frames)
    temporal: int | None = None        # temporal position (1-based) for time series
    b_value: float | None = None
    b_dir: tuple | None = None         # gradient direction, None for b0 / trace
    trace: bool = False
    echo_time: float | None = None
    image_tokens: tuple = ()           # extra ImageType values for this frame
    mosaic_tiles: int = 0              # Siemens mosaic: number of slices tiled
    plane: str | None = None           # 3-plane scouts: plane of this image
    extra: dict = field(default_factory=dict)


@dataclass
class Series:
    """One synthetic series before vendor metadata is applied."""

    sequence: str                      # taxonomy id
    subtype: str                       # finer recipe name (mprage, bold, fieldmap_phase, ...)
    frames: list
    acq: dict                          # physical parameters: tr, te, ti, fa, etl, mr_type ('2D'/'3D'), ...
    pixel_spacing: list | None
    thickness: float | None
    spacing: float | None
    rows: int = 0
    cols: int = 0
    acq_matrix: tuple = (0, 0, 0, 0)
    kind: str = "M"                    # M magnitude, P phase, ADC, MAP, RGB, MIP, MNIP
    derived: bool = False
    post_contrast: bool = False
    fat_sat: bool = False
    n_temporal: int | None = None
    orientation: str = ""              # filled from the IOPs by the generator
    source_uid_key: str | None = None  # series this one is derived from (same FrameOfReference)
    description_hint: str = ""         # plane token used for the SeriesDescription

    def __post_init__(self):
        if self.frames and self.rows == 0:
            a = self.frames[0].pixels
            self.rows, self.cols = int(a.shape[0]), int(a.shape[1])
