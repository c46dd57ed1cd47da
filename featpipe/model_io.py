"""Saving and loading trained pipelines with skops.

skops files, unlike pickles, only rebuild objects of types the loader
trusts. We trust exactly the types a featpipe pipeline is made of: our own
classes, scikit-learn's and numpy's; a file that asks for anything else is
refused.
"""

import skops.io as sio

from featpipe.errors import ModelFileError

TRUSTED_PREFIXES = ("featpipe.", "sklearn.", "numpy.", "builtins.", "collections.", "scipy.")


def save_model(model, path):
    """Write ``model`` to ``path`` in skops format."""
    sio.dump(model, path)


def load_model(path):
    """Read a model saved by :func:`save_model`, trusting only featpipe's own types.

    Raises
    ------
    ModelFileError
        When the file cannot be read or would load a type outside featpipe,
        scikit-learn, numpy and scipy.
    """
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except OSError as error:
        raise ModelFileError(f"cannot read model file {path}: {error.strerror or error}") from None
    except Exception as error:  # skops raises several types for a damaged archive
        raise ModelFileError(f"{path} is not a featpipe model file ({error})") from None
    refused = [name for name in untrusted if not name.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise ModelFileError(f"{path} asks for untrusted types: {', '.join(refused)}")
    return sio.load(path, trusted=untrusted)
