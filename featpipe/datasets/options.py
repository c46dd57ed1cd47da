"""How a data set is loaded: image size, validation hold-out, seed, strictness, download folder.

:class:`LoadOptions` travels whole from the command line to :func:`featpipe.datasets.load_dataset`;
the pipeline's and the extract job's option objects extend it
(:mod:`featpipe.pipeline.options`), so a loading option added here reaches both.
"""

from dataclasses import dataclass
from pathlib import Path

DEFAULT_IMAGE_SIZE = 32
"""Side in pixels images are resized to when nothing else says."""

DEFAULT_MAX_PIXELS = 40_000_000
"""Largest decoded image, in pixels (``--max-pixels``): about 160 MB as 8-bit
RGBA, well under Pillow's own limit of 89,478,485 (which warns) and twice
that (which raises)."""


@dataclass(frozen=True)
class LoadOptions:
    """How to load a data set.

    Parameters
    ----------
    image_size : int or None, default=None
        Height and width every image is resized to; ``None`` for the
        caller's default (the pipeline file's, or 32).
    val_size : None, int or float, default=None
        Validation images held out of train, stratified: ``None`` for 1,000,
        or 10% of train when that is fewer; an int for a count; a float in
        (0, 1) for a fraction.
    seed : int, default=0
        Seed of the built-in set, of the test split of a folder without one
        and of the validation hold-out.
    strict : bool, default=False
        Raise at the first unreadable image file instead of skipping it.
    cache_dir : str, Path or None, default=None
        Where ``"cifar10"`` is downloaded (and, for a run, where stage
        outputs are cached); ``None`` for the user cache folder.
    max_pixels : int or None, default=DEFAULT_MAX_PIXELS
        Image files whose header announces more pixels are skipped (or,
        with ``strict``, refused) before they are decoded; ``None``: no
        limit of featpipe's own (Pillow's bomb limit still holds).
    memory_budget : int or None, default=None
        Bytes of decoded images a command may hold at once; ``None`` for
        half the machine's memory (:mod:`featpipe.memory_budget`). A load
        that would need more is refused before anything is decoded.
    """

    image_size: int | None = None
    val_size: int | float | None = None
    seed: int = 0
    strict: bool = False
    cache_dir: str | Path | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    memory_budget: int | None = None
