"""How much memory a command may use, and the check made before an in-memory load allocates it.

``featpipe run`` holds every decoded image in memory (N x size x size x 3
bytes) before it extracts features, so a large ``--image-size`` or data set
could grow until the machine swaps. The size is known before anything is
decoded (the number of files and the target side), so the run compares it
with ``--memory-budget`` first and refuses with one line that says what
would fit and points to ``featpipe extract``, which streams.

Sizes are written like ``256M``, ``4G`` or ``1.5T`` (powers of 1024; a
bare number is bytes). The default budget is half of the machine's memory,
or of the cgroup limit when one is set (containers).
"""

import math
import os
import re
from pathlib import Path

from featpipe.errors import FeatpipeError

DEFAULT_FRACTION = 0.5
"""Share of the machine's (or container's) memory a command may use by default."""

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)
_CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


class MemoryBudgetError(FeatpipeError):
    """A command that would need more memory than ``--memory-budget``, or a budget that cannot be read."""


def parse_size(text):
    """Bytes in a size written like ``256M``, ``4G``, ``512MiB`` or ``1000000``.

    Raises
    ------
    MemoryBudgetError
        When ``text`` is not such a size, or is zero.
    """
    match = _SIZE.fullmatch(str(text))
    if match is None:
        raise MemoryBudgetError(f"memory size {text!r} is not a size like 256M, 4G or 1.5T")
    size = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    if size <= 0:
        raise MemoryBudgetError(f"memory size {text!r} must be more than zero")
    return size


def format_size(n_bytes):
    """``n_bytes`` as a short human size: ``1.5 GiB``, ``300 MiB``."""
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes >= factor:
            return f"{n_bytes / factor:.3g} {unit}"
    return f"{int(n_bytes)} B"


def machine_memory():
    """Physical memory in bytes, or the cgroup memory limit when that is smaller."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for path in _CGROUP_LIMITS:
        try:
            limit = path.read_text().strip()
        except OSError:
            continue
        if limit.isdigit():
            total = min(total, int(limit))
    return total


def default_budget():
    """:data:`DEFAULT_FRACTION` of :func:`machine_memory`, in bytes."""
    return int(machine_memory() * DEFAULT_FRACTION)


def image_bytes(n_images, image_size):
    """Bytes of ``n_images`` uint8 RGB images of ``image_size`` x ``image_size``."""
    return int(n_images) * int(image_size) ** 2 * 3


STREAMING_ADVICE = ("`featpipe extract` streams the images into a feature store instead "
                    "(then `featpipe run SPEC --data STORE`)")
"""What a refused in-memory run should do instead."""


def check_in_memory_load(n_images, image_size, budget, what="load", advice=STREAMING_ADVICE):
    """Refuse an in-memory load of ``n_images`` images that would not fit in ``budget`` bytes.

    Parameters
    ----------
    n_images : int
        Images the load holds at once (augmented copies included).
    image_size : int
        Their side in pixels.
    budget : int
        Bytes allowed (``--memory-budget``).
    what : str
        Names the step in the message.
    advice : str
        What to do instead, ending the message.

    Raises
    ------
    MemoryBudgetError
        Saying what is needed, what fits (images at this size, or the size
        for this many images) and ``advice``.
    """
    needed = image_bytes(n_images, image_size)
    if needed <= budget:
        return
    fitting_images = budget // image_bytes(1, image_size)
    fitting_size = math.isqrt(budget // (3 * max(int(n_images), 1)))
    raise MemoryBudgetError(
        f"the {what} would hold {n_images:,} images of {image_size}x{image_size} in memory, "
        f"{format_size(needed)}, over --memory-budget {format_size(budget)}; what fits is "
        f"{fitting_images:,} images of that size or --image-size {fitting_size} for all of them; "
        f"{advice}"
    )
