"""A camera frame cropped and binned to the session's window (session.probe.detector_px, or
window_px when that is 0): the central crop_px x crop_px pixels, summed in bin x bin blocks.
The centre stays at pixel floor(D / 2), the "centred" layout serve reads by default."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FrameWindow:
    out_px: int          # the session's frame side
    crop_px: int = 0     # 0: the largest multiple of out_px that fits the camera frame

    def plan(self, shape: tuple[int, int]) -> tuple[int, int]:
        """(crop, bin) for a camera frame of this shape."""
        side = min(shape)
        crop = self.crop_px or (side // self.out_px) * self.out_px
        if crop > side:
            raise ValueError(f"crop_px {crop} is larger than the camera frame {shape}")
        if crop < self.out_px or crop % self.out_px:
            raise ValueError(f"crop {crop} px is not a positive multiple of the window "
                             f"{self.out_px} px (camera frame {shape})")
        return crop, crop // self.out_px

    def apply(self, frame: np.ndarray) -> np.ndarray:
        crop, b = self.plan(frame.shape)
        h, w = frame.shape
        top, left = h // 2 - crop // 2, w // 2 - crop // 2
        c = np.asarray(frame[top:top + crop, left:left + crop], dtype=np.float32)
        if b > 1:
            c = c.reshape(self.out_px, b, self.out_px, b).sum(axis=(1, 3), dtype=np.float32)
        return np.ascontiguousarray(c, dtype="<f4")
