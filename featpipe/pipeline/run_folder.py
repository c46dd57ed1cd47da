"""Write a run folder atomically: metrics.json, model.skops, examples.npz.

The folder is assembled under a temporary name beside its destination and
renamed into place only when every file is written, so an interrupted run
or a full disk never leaves a half-written run folder behind.
"""

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from featpipe.errors import RunFolderError
from featpipe.model_io import save_model


def default_run_dir(spec_name):
    """``runs/<YYYYmmdd-HHMMSS>-<spec name>`` under the working directory."""
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{spec_name.replace('/', '_')}"


def write_run_folder(out, spec_name, metrics, model, examples):
    """Write a finished run and return its folder.

    Parameters
    ----------
    out : path-like or None
        Destination; ``None`` means :func:`default_run_dir`. An existing
        run folder there (one with a metrics.json) is replaced; any other
        non-empty folder is refused.
    spec_name : str
        Names the default folder.
    metrics : dict
        Written as metrics.json.
    model : sklearn.pipeline.Pipeline
        Written as model.skops.
    examples : dict of arrays or None
        Misclassified test examples, written as examples.npz when given.
    """
    run_dir = Path(out) if out is not None else default_run_dir(spec_name)
    if run_dir.exists() and any(run_dir.iterdir()) and not (run_dir / "metrics.json").is_file():
        raise RunFolderError(f"{run_dir} exists and is not a run folder; choose another --out")
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.partial-", dir=run_dir.parent))
    except OSError as error:
        raise RunFolderError(f"cannot create run folder {run_dir}: {error.strerror or error}") from None
    try:
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
        save_model(model, staging / "model.skops")
        if examples is not None:
            np.savez_compressed(staging / "examples.npz", **examples)
        if run_dir.exists():
            shutil.rmtree(run_dir)
        staging.rename(run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return run_dir
