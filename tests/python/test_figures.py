"""The pictures put each scan position on the pixel it lit: pixel (r, c) of a field-of-view crop
lies at (r, c) * pixel_A (figures.fov_crop), so it must span half a pixel either side of that."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.backend_bases import MouseEvent  # noqa: E402

from ptypilot.figures import pixel_centred_extent_A  # noqa: E402


def test_a_position_within_half_a_pixel_is_drawn_on_that_pixel():
    pixel_A = 0.154
    image = np.arange(5 * 7, dtype=float).reshape(5, 7)
    fig, ax = plt.subplots()
    shown = ax.imshow(image, extent=pixel_centred_extent_A(image, pixel_A))
    fig.canvas.draw()
    try:
        checked = 0
        for r in range(1, 4):
            for c in range(1, 6):
                # 0.4 of a pixel off the position on every side: still that pixel. With the
                # extent starting at 0 instead, the points up and left fell on the neighbour.
                for dy in (-0.4, 0.4):
                    for dx in (-0.4, 0.4):
                        x, y = ax.transData.transform(((c + dx) * pixel_A, (r + dy) * pixel_A))
                        event = MouseEvent("motion_notify_event", fig.canvas, x, y)
                        assert shown.get_cursor_data(event) == image[r, c], (r, c, dy, dx)
                        checked += 1
        assert checked == 3 * 5 * 4
    finally:
        plt.close(fig)
