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
import typing
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


@dataclass(frozen=True)
class Grid:
    """A command's positions that are a regular ny x nx grid in Nion's raster order (row by
    row, each row left to right): position k at (y0 + (k // nx) * dy, x0 + (k % nx) * dx)."""
    ny: int
    nx: int
    y0: float
    x0: float
    dy: float
    dx: float

    def positions(self) -> list[tuple[float, float]]:
        return [(self.y0 + a * self.dy, self.x0 + b * self.dx)
                for a in range(self.ny) for b in range(self.nx)]


def regular_grid(positions: typing.Sequence[tuple[float, float]], step_A: float,
                 tolerance_A: float = 1e-6) -> Grid | None:
    """The grid these positions are, in this order, or None."""
    n = len(positions)
    if n < 2:
        return None
    y0, x0 = positions[0]
    nx = 1
    while nx < n and abs(positions[nx][0] - y0) <= tolerance_A:
        nx += 1
    if n % nx:
        return None
    ny = n // nx
    dx = positions[1][1] - x0 if nx > 1 else step_A
    dy = positions[nx][0] - y0 if ny > 1 else step_A
    if dx <= tolerance_A or dy <= tolerance_A:
        return None
    grid = Grid(ny, nx, y0, x0, dy, dx)
    for (y, x), (gy, gx) in zip(positions, grid.positions()):
        if abs(y - gy) > tolerance_A or abs(x - gx) > tolerance_A:
            return None
    return grid


def subscan_of(mapping: RasterMapping, grid: Grid) -> tuple[tuple[float, float], tuple[float, float]]:
    """(centre, size) of the subscan, fractions of the scan context, whose ny x nx pixel CENTRES
    are the grid's positions: centre + ((a + 0.5) / ny - 0.5) * size = mapping.to_fraction(y_a)."""
    H, W = mapping.rows * mapping.step_A, mapping.cols * mapping.step_A
    size = (grid.ny * grid.dy / H, grid.nx * grid.dx / W)
    centre = mapping.to_fraction(grid.y0 + 0.5 * (grid.ny - 1) * grid.dy,
                                 grid.x0 + 0.5 * (grid.nx - 1) * grid.dx)
    return centre, size
