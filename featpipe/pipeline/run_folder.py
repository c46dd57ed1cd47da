"""Write a run folder atomically: metrics.json, model.skops, examples.npz.

A run first reserves its folder: it creates the destination, empty, and
refuses one that already exists (a finished run, another run writing
there, or anything else), so two runs can never replace each other. The
files are then assembled in a temporary folder beside it and renamed onto
the empty reservation only when every one is written, so an interrupted run
or a full disk never leaves a half-written run folder behind (an
interrupted run removes its reservation too). The finished folder gets the
mode the user's umask gives new folders.
"""

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from featpipe.errors import RunFolderError
from featpipe.model_io import save_model


def default_run_dir(spec_name):
    """``runs/<YYYYmmdd-HHMMSS>-<spec name>`` under the working directory."""
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{spec_name.replace('/', '_')}"


def _umask():
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def reserve_run_dir(out, spec_name):
    """Create the run folder, empty, and return it; refuse one that exists.

    Parameters
    ----------
    out : path-like or None
        Destination; ``None`` means :func:`default_run_dir` (with ``-2``,
        ``-3``... appended when two runs start in the same second).
    spec_name : str
        Names the default folder.

    Raises
    ------
    RunFolderError
        When ``out`` exists (whatever it holds) or cannot be created.
    """
    candidates = [Path(out)] if out is not None else [
        Path(f"{default_run_dir(spec_name)}{'' if number == 1 else f'-{number}'}") for number in range(1, 100)]
    for run_dir in candidates:
        try:
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
        except OSError as error:
            raise RunFolderError(f"cannot create run folder {run_dir}: {error.strerror or error}") from None
    raise RunFolderError(f"{candidates[0]} exists (a finished run, or a run writing there); "
                         "choose another --out or remove it")


def release_run_dir(run_dir):
    """Remove a reserved run folder that is still empty (the run did not finish)."""
    try:
        Path(run_dir).rmdir()
    except OSError:
        pass


def write_run_folder(run_dir, metrics, model, examples):
    """Write a finished run into its reserved, empty folder and return the folder.

    Parameters
    ----------
    run_dir : Path
        The folder :func:`reserve_run_dir` created.
    metrics : dict
        Written as metrics.json.
    model : sklearn.pipeline.Pipeline
        Written as model.skops.
    examples : dict of arrays or None
        Misclassified test examples, written as examples.npz when given.
    """
    import numpy as np

    run_dir = Path(run_dir)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.partial-", dir=run_dir.parent))
    except OSError as error:
        raise RunFolderError(f"cannot create run folder {run_dir}: {error.strerror or error}") from None
    try:
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
        save_model(model, staging / "model.skops")
        if examples is not None:
            np.savez_compressed(staging / "examples.npz", **examples)
        staging.chmod(0o777 & ~_umask())
        staging.rename(run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return run_dir
