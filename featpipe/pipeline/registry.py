"""Spec names to estimator classes.

A pipeline spec such as ``hog+color+svm`` names its feature extractors and
its head by short names; this module maps each name to a class and its
default parameters. Classes are imported on first use, so ``featpipe
--help`` stays quick and a broken optional module only affects the specs
that use it.
"""

from importlib import import_module

from featpipe.errors import ParameterError, UnknownNameError

FEATURES = {
    "raw": ("featpipe.features.raw:RawPixels", {}),
    "color": ("featpipe.features.color:ColorHistogram", {}),
    "hog": ("featpipe.features.hog:HOG", {}),
    "words": ("featpipe.features.words:KMeansWords", {}),
    "bow": ("featpipe.features.words:KMeansWords", {"encoding": "hard"}),
}
"""Feature name -> ("module:Class", default parameters)."""

HEADS = {
    "svm": ("featpipe.heads.linear:LinearSVM", {}),
    "svm2": ("featpipe.heads.linear:LinearSVM", {"squared": True}),
    "softmax": ("featpipe.heads.linear:Softmax", {}),
    "linearsvc": ("sklearn.svm:LinearSVC", {}),
    "logreg": ("sklearn.linear_model:LogisticRegression", {"max_iter": 1000}),
}
"""Head name -> ("module:Class", default parameters)."""

OWN_HEADS = frozenset({"svm", "svm2", "softmax"})
"""Heads trained by featpipe's own optimizers (they keep loss histories)."""


def _build(kind, table, name, params):
    if name not in table:
        raise UnknownNameError(f"unknown {kind} '{name}'; valid {kind}s: {', '.join(sorted(table))}")
    target, defaults = table[name]
    module_name, class_name = target.split(":")
    estimator_class = getattr(import_module(module_name), class_name)
    estimator = estimator_class(**defaults)
    valid = estimator.get_params(deep=False)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise UnknownNameError(
            f"unknown parameter(s) {', '.join(unknown)} for {kind} '{name}'; "
            f"valid: {', '.join(sorted(valid))}"
        )
    estimator.set_params(**params)
    if getattr(estimator, "_parameter_constraints", None):
        # scikit-learn's own estimators check their parameters against these constraints; checking
        # now turns a bad value in a pipeline file into a ParameterError before any data is loaded.
        try:
            estimator._validate_params()
        except ValueError as error:
            raise ParameterError(f"{kind} '{name}': {error}") from None
    return estimator


def make_feature(name, params=None):
    """Return an unfitted extractor for feature ``name`` with ``params`` set."""
    return _build("feature", FEATURES, name, params or {})


def make_head(name, params=None):
    """Return an unfitted classifier for head ``name`` with ``params`` set."""
    return _build("head", HEADS, name, params or {})
