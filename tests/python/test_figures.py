"""The pictures put each scan position on the pixel it lit: pixel (r, c) of a field-of-view crop
lies at (r, c) * pixel_A (figures.fov_crop), so it must span half a pixel either side of that."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.backend_bases import MouseEvent  # noqa: E402

from ptypilot.figures import phase_figure, pixel_centred_extent_A  # noqa: E402


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


class _Grid:
    pixel_A = 0.154


def test_a_long_title_stays_clear_of_the_colour_bar():
    """eval names its figures '<strategy>: 250 positions, SSIM 0.854 vs truth'; on one line, the
    longest strategy name ran the title into the colour bar's tick labels."""
    image = np.random.default_rng(0).random((130, 130))
    title = "material-density-two-class: 250 positions, SSIM 0.854 vs truth"
    fig = phase_figure(image, _Grid(), title, positions_A=np.array([[1.0, 2.0]]))
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        image_ax, colour_bar_ax = fig.axes
        heading = image_ax.title.get_window_extent(renderer)
        assert heading.x0 >= 0 and heading.x1 <= fig.bbox.x1
        assert not heading.overlaps(colour_bar_ax.get_tightbbox(renderer))
        assert image_ax.title.get_text().replace("\n", " ") == title
    finally:
        plt.close(fig)
