"""The errors a user can cause, under one base class.

Every error that bad input can raise (a wrong name or parameter, a missing or
corrupt file, a store made with other settings, a cache folder that cannot be
written) is a :class:`FeatpipeError`. It subclasses ``ValueError``, so code
that catches ``ValueError`` keeps working and scikit-learn's estimator checks,
which expect ``ValueError`` for bad parameters, keep passing. The command line
turns a ``FeatpipeError`` into one ``featpipe: error:`` line and exit status 2;
any other exception is a bug and reported as an internal error
(:mod:`featpipe.cli`). The model is ``sklearn.exceptions``: one module of
exception classes, each also importable from the module that raises it.
"""


class FeatpipeError(ValueError):
    """Base class of every error a user can cause; its message is one line that says what to do."""


class ParameterError(FeatpipeError):
    """A parameter of an extractor, a head or a search outside its valid range."""


class SpecError(FeatpipeError):
    """A pipeline spec or file that cannot be run (raised by :mod:`featpipe.pipeline.spec`)."""


class UnknownNameError(FeatpipeError):
    """A feature, head or parameter name that does not exist (:mod:`featpipe.pipeline.registry`)."""


class DatasetError(FeatpipeError):
    """A data set that cannot be loaded: missing, empty, malformed or unreadable (:mod:`featpipe.datasets`)."""


class StoreError(FeatpipeError):
    """A feature store that cannot be written or read (:mod:`featpipe.store`)."""


class CacheError(FeatpipeError):
    """A cache directory that cannot be used (:mod:`featpipe.cache`)."""


class ModelFileError(FeatpipeError):
    """A model file that is missing, damaged or asks for untrusted types (:mod:`featpipe.model_io`)."""


class RunFolderError(FeatpipeError):
    """A run folder that cannot be written where asked (:mod:`featpipe.pipeline.run_folder`)."""


class ReportError(FeatpipeError):
    """A report that cannot be made from the given run folders (:mod:`featpipe.report`)."""


class BackendError(FeatpipeError):
    """A parallel backend that cannot be used: Dask missing or its scheduler unreachable."""
