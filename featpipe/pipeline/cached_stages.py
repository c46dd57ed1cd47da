"""The pipeline's stages, cached with joblib, timed, and called with their data only on a cache miss.

A stage function of :mod:`featpipe.pipeline.stages` takes short key arguments, which joblib
hashes, and data arguments, listed in ``stages.IGNORED``, which it does not. When a stage's
output is cached, its data is not needed at all: :meth:`CachedStages.lazily` then calls the
stage with ``None`` for every ignored argument, and fetches the data (loading the data set,
extracting features) only on a miss. That is what keeps a warm run to a few seconds whatever
the data set's size.
"""

import sys
import time
from contextlib import contextmanager

from tqdm.auto import tqdm

from featpipe.metrics_schema import STAGE_NAMES
from featpipe.pipeline import stages


class StageClock:
    """Seconds and cache hits per stage, and tqdm bars that respect ``quiet``."""

    def __init__(self, quiet):
        self.quiet = quiet
        self.seconds = dict.fromkeys(STAGE_NAMES, 0.0)
        self.hits = dict.fromkeys(STAGE_NAMES, True)

    def bar(self, description, total):
        """A progress bar on stderr that shows only when a step takes over half a second."""
        return tqdm(total=total, desc=description, unit="img", delay=0.5,
                    disable=self.quiet, file=sys.stderr, leave=False)

    @contextmanager
    def timed(self, stage):
        """Add the time spent in the ``with`` block to ``stage``."""
        started = time.perf_counter()
        yield
        self.seconds[stage] += time.perf_counter() - started


class CachedStages:
    """Every function of :mod:`featpipe.pipeline.stages` cached in ``memory``, timed on ``clock``.

    Parameters
    ----------
    memory : joblib.Memory
        Where outputs are cached (:func:`featpipe.cache.make_memory`).
    clock : StageClock
        Receives each call's time and whether it was a cache hit.
    """

    def __init__(self, memory, clock):
        self.clock = clock
        self._functions = {name: memory.cache(getattr(stages, name), ignore=ignored)
                           for name, ignored in stages.IGNORED.items()}

    def call(self, name, *keys, **data):
        """Call stage ``name`` with its key arguments and its data arguments (by name)."""
        function = self._functions[name]
        stage = stages.TIMED_AS[name]
        hit = function.check_call_in_cache(*keys, **data)
        with self.clock.timed(stage):
            output = function(*keys, **data)
        self.clock.hits[stage] = self.clock.hits[stage] and hit
        return output

    def lazily(self, name, keys, fetch_data):
        """Output of stage ``name`` for ``keys``; ``fetch_data()`` runs only when it is not cached.

        Parameters
        ----------
        name : str
            A function of :mod:`featpipe.pipeline.stages`.
        keys : tuple
            Its key arguments, in order.
        fetch_data : callable
            Returns its data arguments as a dict, by name (``stages.IGNORED[name]``).
            When the output is cached the stage is called with ``None`` for each of
            them instead, and ``fetch_data`` is never called.
        """
        placeholders = dict.fromkeys(stages.IGNORED[name])
        if self._functions[name].check_call_in_cache(*keys, **placeholders):
            return self.call(name, *keys, **placeholders)
        return self.call(name, *keys, **fetch_data())
