"""How a data set is loaded: image size, validation hold-out, seed, strictness, download folder.

:class:`LoadOptions` travels whole from the command line to :func:`featpipe.datasets.load_dataset`;
the pipeline's and the extract job's option objects extend it
(:mod:`featpipe.pipeline.options`), so a loading option added here reaches both.
"""

from dataclasses import dataclass
from pathlib import Path

DEFAULT_IMAGE_SIZE = 32
"""Side in pixels images are resized to when nothing else says."""


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
    """

    image_size: int | None = None
    val_size: int | float | None = None
    seed: int = 0
    strict: bool = False
    cache_dir: str | Path | None = None
