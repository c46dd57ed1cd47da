"""Lazy package exports (PEP 562), so importing a package does not import its heavy modules.

``featpipe --help`` and ``import featpipe.store`` should not pay for scikit-learn, matplotlib or
skops. A package lists which submodule defines each name it exports; the first access to a
name imports that submodule. The model is scikit-image's ``lazy_loader.attach``.
"""

from importlib import import_module


def attach(package_name, exports):
    """Module-level ``__getattr__``, ``__dir__`` and ``__all__`` for a package's lazy exports.

    Parameters
    ----------
    package_name : str
        The package's ``__name__``.
    exports : dict of str to str
        Exported name -> submodule (relative to the package) that defines it.

    Returns
    -------
    getattr_, dir_, all_ : callable, callable, list of str
        Assign them to the package's ``__getattr__``, ``__dir__`` and ``__all__``.

    Examples
    --------
    >>> __getattr__, __dir__, __all__ = attach(__name__, {"open": "reader"})  # doctest: +SKIP
    """

    def __getattr__(name):
        if name not in exports:
            raise AttributeError(f"module {package_name!r} has no attribute {name!r}")
        value = getattr(import_module(f"{package_name}.{exports[name]}"), name)
        globals_of_package = import_module(package_name).__dict__
        globals_of_package[name] = value
        return value

    def __dir__():
        return sorted(set(import_module(package_name).__dict__) | set(exports))

    return __getattr__, __dir__, sorted(exports)
