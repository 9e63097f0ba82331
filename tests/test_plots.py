"""Figures show themselves in a notebook without pyplot."""

from __future__ import annotations

import numpy as np
from IPython.core.formatters import PNGFormatter

from cae_keras import eda, plots


def test_every_figure_renders_as_png_when_it_is_a_cells_value():
    figures = [
        plots.loss_curve([{"epoch": 1, "loss": 0.2, "val_loss": 0.3}, {"epoch": 2, "loss": 0.1, "val_loss": 0.2}]),
        plots.image_grid([np.zeros((8, 8)), np.ones((8, 8, 3))], ["a", "b"], columns=2),
        plots.comparison_bars([{"model": "a", "image_auroc": 0.5, "pixel_auroc": 0.6, "aupro": 0.7}]),
        eda.intensity_histograms(np.random.default_rng(0).random((2, 8, 8, 3)), np.zeros((1, 8, 8, 3))),
    ]
    for figure in figures:
        png = PNGFormatter()(figure)  # what Jupyter calls to display a cell's value
        assert png is not None and png[:8] == b"\x89PNG\r\n\x1a\n"


def test_maps_of_one_kind_share_one_scale_and_colour_bar():
    low, high = np.zeros((8, 8)), np.full((8, 8), 4.0)
    low[0, 0] = 1.0
    figure = plots.image_grid([low, high], ["a", "b"], columns=2, shared_scale="1 - SSIM")
    limits = {axes.images[0].get_clim() for axes in figure.axes if axes.images}
    assert limits == {(0.0, 4.0)}  # both panels on one scale, not each stretched to its own range
    assert any(axes.get_ylabel() == "1 - SSIM" for axes in figure.axes)  # the shared colour bar
    alone = plots.image_grid([low, high], ["a", "b"], columns=2)
    assert {axes.images[0].get_clim() for axes in alone.axes if axes.images} == {(0.0, 1.0), (4.0, 4.0)}
