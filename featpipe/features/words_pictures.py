"""Old import path of :func:`featpipe.features.plotting.plot_words` (kept for existing code)."""

from featpipe.features.plotting import plot_words, word_montage

__all__ = ["plot_words", "word_montage"]
