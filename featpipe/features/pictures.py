"""Old import path of the HOG and colour pictures, now in :mod:`featpipe.features.plotting`."""

from featpipe.features.plotting import hog_glyphs, plot_color_histogram, plot_hog

__all__ = ["hog_glyphs", "plot_color_histogram", "plot_hog"]
