"""ptypilot's positions (Angstrom from the FOV origin) <-> Nion probe positions (fractions of the
scan context's field of view).

ptypilot's raster is rows x cols nodes step_A apart; node (i, j) is at (i * step_A, j * step_A)
and every position lies in [0, (rows - 1) * step_A] x [0, (cols - 1) * step_A]
(kernels/include/ptypilot/scan_geometry.hpp).

The bridge sets Swift's scan context to a rows x cols scan whose pixel is step_A on a side:
pixel_size (rows, cols) and fov_nm = max(rows, cols) * step_A / 10, which Nion's aspect rule
(ScanFrameParameters.fov_size_nm: fov_nm is the longer side) turns into a field of view of
rows * step_A by cols * step_A. Nion's probe position is a fraction of that field, (0, 0) its
top-left corner, (1, 1) its bottom-right corner, (0.5, 0.5) its centre.

The half-pixel convention: ptypilot's node (i, j) is the CENTRE of scan pixel (i, j), which spans
fractions [i / rows, (i + 1) / rows). So

    fy = (y_A + step_A / 2) / (rows * step_A)      y_A = fy * rows * step_A - step_A / 2
    fx = (x_A + step_A / 2) / (cols * step_A)      x_A = fx * cols * step_A - step_A / 2

The FOV origin (0, 0) is fraction (0.5 / rows, 0.5 / cols), not the corner (0, 0), and the last
node is 1 - 0.5 / rows: a position is in the field when its fraction lies in
[0.5 / rows, 1 - 0.5 / rows] (within `tolerance_A`), which keeps the probe half a pixel inside
the scanned area, as an image of the same scan would show it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class RasterMapping:
    rows: int
    cols: int
    step_A: float
    tolerance_A: float = 1e-6

    def __post_init__(self):
        if self.rows <= 0 or self.cols <= 0:
            raise ValueError(f"the raster needs rows and cols > 0, got {self.rows} x {self.cols}")
        if not (math.isfinite(self.step_A) and self.step_A > 0):
            raise ValueError(f"step_A must be finite and > 0, got {self.step_A}")

    @property
    def height_A(self) -> float:
        return (self.rows - 1) * self.step_A

    @property
    def width_A(self) -> float:
        return (self.cols - 1) * self.step_A

    # The scan context the bridge sets (Nion units: nm).
    @property
    def scan_pixel_size(self) -> tuple[int, int]:
        return self.rows, self.cols

    @property
    def fov_nm(self) -> float:
        return max(self.rows, self.cols) * self.step_A / 10.0

    def to_fraction(self, y_A: float, x_A: float) -> tuple[float, float]:
        return ((y_A + 0.5 * self.step_A) / (self.rows * self.step_A),
                (x_A + 0.5 * self.step_A) / (self.cols * self.step_A))

    def to_angstrom(self, fy: float, fx: float) -> tuple[float, float]:
        return (fy * self.rows * self.step_A - 0.5 * self.step_A,
                fx * self.cols * self.step_A - 0.5 * self.step_A)

    def check(self, y_A: float, x_A: float) -> str | None:
        """None when (y_A, x_A) may be visited; otherwise why not, in words."""
        if not (math.isfinite(y_A) and math.isfinite(x_A)):
            return f"({y_A}, {x_A}) A is not finite"
        t = self.tolerance_A
        if not (-t <= y_A <= self.height_A + t and -t <= x_A <= self.width_A + t):
            return (f"({y_A:.4f}, {x_A:.4f}) A is outside the field of view "
                    f"[0, {self.height_A:.4f}] x [0, {self.width_A:.4f}] A "
                    f"({self.rows} x {self.cols} raster at {self.step_A} A)")
        return None
