"""What every benchmark script shares: where CIFAR-10 is, how to time, how to report.

The scripts run featpipe and its peer in one process on the same input and
print one JSON line per figure (:func:`emit`). Times are medians of repeated
calls after an optional warm-up (:func:`timed`). CIFAR-10 is read from the
JPEG copy beside the checkout, ``../shared/datasets/cifar10-jpg``, or from
the folder named by the ``FEATPIPE_CIFAR_FOLDER`` environment variable (the
same variable the tests honour).
"""

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

CIFAR_FOLDER = Path(
    os.environ.get("FEATPIPE_CIFAR_FOLDER")
    or Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpg"
)


class Timing(NamedTuple):
    """Median seconds of the timed calls, the last call's result, and how many calls were timed."""

    seconds: float
    result: Any
    repeats: int


def tree_rss(process):
    """Resident bytes of a ``psutil.Process`` and all its descendants, summed (vanished ones count 0)."""
    import psutil  # the bench extra; only the scripts that sample memory need it

    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total


def peak_tree_rss(child, interval=0.05):
    """Wait for the ``subprocess.Popen`` ``child`` to end; return the peak of :func:`tree_rss` over its tree, sampled every ``interval`` s."""
    import psutil  # as in tree_rss

    process = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        try:
            peak = max(peak, tree_rss(process))
        except psutil.NoSuchProcess:
            break
        time.sleep(interval)
    child.wait()
    return peak


def emit(**figure):
    """Print one figure as a JSON line (flushed, so a long run shows its progress)."""
    print(json.dumps(figure), flush=True)


def timed(function, repeats, *, warm_up=True, budget_seconds=None):
    """Time ``function()``: one untimed warm-up call, then the median of ``repeats`` calls.

    Parameters
    ----------
    function : callable
        Called without arguments.
    repeats : int
        Number of timed calls (at least one is made).
    warm_up : bool, default=True
        Make one untimed call first (imports, caches, BLAS thread start-up).
        Turn it off for calls that take minutes.
    budget_seconds : float or None, default=None
        Stop repeating once the timed calls so far took longer than this, so a
        slow peer is timed fewer times; :attr:`Timing.repeats` says how many.

    Returns
    -------
    Timing
        ``(seconds, result, repeats)``: the median, the last result, the count.
    """
    if warm_up:
        function()
    seconds, result = [], None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
        if budget_seconds is not None and sum(seconds) > budget_seconds:
            break
    return Timing(statistics.median(seconds), result, len(seconds))


def require_cifar():
    """The CIFAR-10 folder, or exit with a message saying where it was looked for."""
    if not (CIFAR_FOLDER / "train").is_dir():
        sys.exit(f"this benchmark reads CIFAR-10 from {CIFAR_FOLDER}, which is missing "
                 "(set FEATPIPE_CIFAR_FOLDER to the folder holding train/ and test/)")
    return CIFAR_FOLDER


def class_folders(split):
    """The class folders of one split (``"train"`` or ``"test"``), sorted: their index is the label."""
    return sorted(path for path in (require_cifar() / split).iterdir() if path.is_dir())


def decode(paths):
    """Decode JPEG files into one uint8 (N, 32, 32, 3) array with Pillow."""
    return np.stack([np.asarray(Image.open(path).convert("RGB")) for path in paths])


def load_split(split, per_class=None):
    """Decode the first ``per_class`` images of every class of one split (all when None).

    Returns
    -------
    images : ndarray of uint8, shape (N, 32, 32, 3)
    labels : ndarray of int64, shape (N,)
    """
    paths, labels = [], []
    for label, folder in enumerate(class_folders(split)):
        chosen = sorted(folder.glob("*.jpg"))[:per_class]
        paths += chosen
        labels += [label] * len(chosen)
    return decode(paths), np.asarray(labels, dtype=np.int64)
