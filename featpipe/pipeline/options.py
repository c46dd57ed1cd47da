"""What a run and an extract job are told besides their spec and data: frozen option objects.

The command line builds one :class:`RunOptions` or :class:`ExtractOptions` from its flags
(:func:`options_from`) and passes it whole down to where each field is used, the data set
loader included: both extend :class:`featpipe.datasets.LoadOptions`, so the loader takes them as
they are. Adding an option is one field here (and its flag in :mod:`featpipe.cli`, whose
parameter of the same name fills it). The model is scikit-learn's keyword-only parameters
after the data arguments.
"""

from dataclasses import dataclass, fields, replace
from pathlib import Path

from featpipe.datasets.options import LoadOptions

DEFAULT_FIT_SAMPLES = 50_000
"""At most this many training images (a seeded sample) fit the extractors that learn."""


@dataclass(frozen=True)
class RunOptions(LoadOptions):
    """How to run a pipeline (``featpipe run`` and ``compare``), besides its spec, data and folder.

    Parameters
    ----------
    image_size, val_size, seed, strict, cache_dir
        As in :class:`featpipe.datasets.LoadOptions`; ``image_size=None``
        takes the pipeline file's, else 32; ``seed`` also seeds every
        estimator's ``random_state`` the spec leaves unset; ``cache_dir`` is
        also the stage cache's root.
    use_cache : bool, default=True
        ``False`` recomputes every stage and caches nothing.
    n_jobs : int, default=-1
        Worker processes for extraction (-1: every core). Results do not
        depend on it.
    chunk_size : int or None, default=None
        Images per extraction task (None: :data:`featpipe.parallel.DEFAULT_CHUNK_SIZE`).
    search : bool, default=False
        Search learning rate x regularization on the validation split first.
    quiet : bool, default=False
        No progress bars.
    memory_budget : int or None, default=None
        As in :class:`featpipe.datasets.LoadOptions`; for a run it also
        bounds the training features: a feature store whose training split
        is larger is trained on shard by shard, and images whose pixels and
        features would not fit are extracted into a store under the cache
        first (:mod:`featpipe.pipeline.image_store`).
    backend : {None, "local", "dask"}, default=None
        ``"dask"`` starts a LocalCluster of ``n_jobs`` workers: extraction
        runs on it, and on a feature store the heads' full-batch losses are
        summed over the shards on its workers.
    scheduler : str or None, default=None
        Address of a running Dask scheduler (``tcp://HOST:8786``) to use
        instead of a LocalCluster.
    """

    use_cache: bool = True
    n_jobs: int = -1
    chunk_size: int | None = None
    search: bool = False
    quiet: bool = False
    backend: str | None = None
    scheduler: str | None = None


@dataclass(frozen=True)
class ExtractOptions(LoadOptions):
    """How to run an extract job (``featpipe extract``), besides its features, data and store folder.

    Parameters
    ----------
    image_size, val_size, seed, strict, cache_dir
        As in :class:`featpipe.datasets.LoadOptions`; ``image_size=None``
        takes the ``from_run`` run's, else 32; ``seed`` also draws the fit
        sample.
    n_jobs : int or None, default=None
        Processes extracting at once, this one included; ``None`` or -1 uses
        every core. With ``backend="dask"`` and no scheduler, the
        LocalCluster's workers.
    chunk_size : int or None, default=None
        Images per shard, the unit of work and of resuming (None:
        :data:`featpipe.parallel.DEFAULT_CHUNK_SIZE`).
    scheduler : str or None, default=None
        Address of a Dask scheduler, ``tcp://HOST:PORT``: run the chunks there.
    backend : {None, "local", "dask"}, default=None
        ``None`` or ``"local"``: this process and ``n_jobs - 1`` local
        workers. ``"dask"`` without ``scheduler`` starts a LocalCluster on
        127.0.0.1.
    from_run : path-like or None, default=None
        A run folder whose fitted extractors are used instead of fitting.
    fit_samples : int, default=50000
        Training images the extractors that learn are fitted on, at most.
    progress : bool, default=True
        Show a progress bar with images per second and the time left.
    augment : tuple of str, default=()
        Training-set augmentations (:mod:`featpipe.pipeline.augment`):
        ``("hflip",)`` appends the mirror image of every training image as
        an extra training row of the store (extracted like any other
        image, listed in the manifest's ``mirrored`` rows).
    """

    n_jobs: int | None = None
    chunk_size: int | None = None
    scheduler: str | None = None
    backend: str | None = None
    from_run: str | Path | None = None
    fit_samples: int = DEFAULT_FIT_SAMPLES
    progress: bool = True
    augment: tuple = ()


def options_from(options_class, values, **derived):
    """An ``options_class`` filled from ``values`` (e.g. the command's parameters) by field name.

    Entries of ``values`` that are not fields are left out, so a command can pass all its
    parameters; ``derived`` sets fields whose value is computed (``use_cache=not no_cache``)
    and wins over an entry of ``values`` of the same name.
    """
    names = {field.name for field in fields(options_class)}
    return options_class(**{name: value for name, value in {**values, **derived}.items() if name in names})


def resolve_options(options_class, options, overrides):
    """``options`` (default: ``options_class()``) with the fields in ``overrides`` replaced.

    Lets the Python entry points take ``options=`` and the same fields as keywords,
    ``run_pipeline(spec, n_jobs=1)`` as well as ``run_pipeline(spec, options=RunOptions(n_jobs=1))``.
    An unknown keyword is a ``TypeError``, as for any function.
    """
    options = options_class() if options is None else options
    if not isinstance(options, options_class):
        raise TypeError(f"options must be a {options_class.__name__}; got {type(options).__name__}")
    return replace(options, **overrides) if overrides else options
