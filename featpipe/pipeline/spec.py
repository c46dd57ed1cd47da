"""Pipeline descriptions: ``hog+color+svm`` strings and ``pipelines/*.toml`` files.

A spec string is ``FEATURE[+FEATURE...]+HEAD`` with default parameters. A
pipeline file adds parameters; its name is the file's stem, so
``pipelines/hog+svm.toml`` is run as ``featpipe run hog+svm`` and shadows
the bare spec of the same name. A file looks like::

    description = "HOG gradient histograms, multiclass SVM"
    augment = ["hflip"]        # optional: also train on mirrored copies

    [[features]]
    name = "hog"
    pixels_per_cell = [8, 8]

    [normalize]
    method = "standard"        # or "none"

    [head]
    name = "svm"
    learning_rate = 0.001

    [data]                     # optional defaults; --data and --image-size win
    image_size = 32

    [search]                   # optional grid for --search
    learning_rates = [1e-4, 1e-3]
    regs = [1e-5, 1e-4]
"""

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from featpipe.errors import SpecError
from featpipe.pipeline.augment import check_augmentations
from featpipe.pipeline.registry import FEATURES, HEADS

NORMALIZE_METHODS = ("standard", "none")


@dataclass(frozen=True)
class Step:
    """A named estimator with its parameters, as written in a spec."""

    name: str
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PipelineSpec:
    """Everything that defines a pipeline, before anything is built.

    Attributes
    ----------
    name : str
        The spec string or the pipeline file's stem.
    features : tuple of Step
        Extractors whose outputs are stacked side by side.
    head : Step
        The classifier.
    normalize : str
        ``"standard"`` (per-feature mean and standard deviation fitted on the
        training split) or ``"none"``.
    data : dict
        Default ``data`` and ``image_size`` for the run.
    search : dict
        ``learning_rates``, ``regs`` (and ``n_samples`` for random
        search) for ``--search``.
    description : str
        One line for ``featpipe pipelines``.
    augment : tuple of str
        Training-set augmentations (:mod:`featpipe.pipeline.augment`), e.g. ``("hflip",)``.
    """

    name: str
    features: tuple
    head: Step
    normalize: str = "standard"
    data: dict = field(default_factory=dict)
    search: dict = field(default_factory=dict)
    description: str = ""
    augment: tuple = ()

    def to_dict(self):
        """The description as plain JSON-ready data."""
        return {
            "features": [{"name": step.name, "params": dict(step.params)} for step in self.features],
            "augment": list(self.augment),
            "normalize": self.normalize,
            "head": {"name": self.head.name, "params": dict(self.head.params)},
        }


def parse_features(text, spec=None):
    """Parse the feature half of a spec, ``hog+color``, into Steps.

    ``spec`` is the whole spec string, named in error messages.
    """
    spec = spec or text
    names = [name.strip() for name in text.split("+")]
    if not text.strip() or any(not name for name in names):
        raise SpecError(f"'{text}' is not a feature spec; write FEATURE[+FEATURE...], e.g. hog+color")
    for name in names:
        if name not in FEATURES:
            raise SpecError(f"unknown feature '{name}' in '{spec}'; valid features: {', '.join(sorted(FEATURES))}")
    if len(set(names)) != len(names):
        raise SpecError(f"'{spec}' names a feature twice")
    return tuple(Step(name) for name in names)


def parse_spec(text):
    """Parse ``FEATURE[+FEATURE...]+HEAD`` into a PipelineSpec with default parameters."""
    feature_text, plus, head_name = text.strip().rpartition("+")
    if not plus or not feature_text:
        raise SpecError(
            f"'{text}' is not a pipeline spec; write FEATURE[+FEATURE...]+HEAD, "
            f"e.g. hog+color+svm (heads: {', '.join(sorted(HEADS))})"
        )
    if head_name not in HEADS:
        raise SpecError(f"unknown head '{head_name}' in '{text}'; valid heads: {', '.join(sorted(HEADS))}")
    return PipelineSpec(name=text.strip(), features=parse_features(feature_text, text.strip()), head=Step(head_name))


def _step_from_table(table, kind, path, valid):
    if not isinstance(table, dict) or "name" not in table:
        raise SpecError(f"{path}: each [{kind}] table needs a name")
    params = {key: value for key, value in table.items() if key != "name"}
    if table["name"] not in valid:
        raise SpecError(f"{path}: unknown {kind} '{table['name']}'; valid: {', '.join(sorted(valid))}")
    return Step(table["name"], params)


def load_pipeline_file(path):
    """Read a pipeline TOML file into a PipelineSpec.

    Raises
    ------
    SpecError
        When the file cannot be read, is not valid TOML, or misses or
        misnames a feature or head.
    """
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SpecError(f"cannot read pipeline file {path}: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SpecError(f"{path} is not valid TOML: {error}") from None
    unknown = sorted(set(document) - {"description", "features", "head", "normalize", "data", "search", "augment"})
    if unknown:
        raise SpecError(f"{path}: unknown section(s) {', '.join(unknown)}")
    features = document.get("features")
    if not isinstance(features, list) or not features:
        raise SpecError(f"{path}: needs at least one [[features]] table")
    steps = tuple(_step_from_table(table, "features", path, FEATURES) for table in features)
    if "head" not in document:
        raise SpecError(f"{path}: needs a [head] table")
    head = _step_from_table(document["head"], "head", path, HEADS)
    normalize = document.get("normalize", {}).get("method", "standard")
    if normalize not in NORMALIZE_METHODS:
        raise SpecError(f"{path}: normalize method must be one of {', '.join(NORMALIZE_METHODS)}")
    augment = document.get("augment", [])
    if not isinstance(augment, list):
        raise SpecError(f"{path}: augment must be a list, e.g. augment = [\"hflip\"]")
    try:
        augment = check_augmentations(augment)
    except SpecError as error:
        raise SpecError(f"{path}: {error}") from None
    return PipelineSpec(
        name=path.stem,
        features=steps,
        head=head,
        normalize=normalize,
        data=dict(document.get("data", {})),
        search=dict(document.get("search", {})),
        description=str(document.get("description", "")),
        augment=augment,
    )


def default_pipelines_dir():
    """Where named pipelines live.

    ``$FEATPIPE_PIPELINES`` when set, else ``./pipelines`` when it exists,
    else the ``pipelines/`` folder of the featpipe checkout.
    """
    if os.environ.get("FEATPIPE_PIPELINES"):
        return Path(os.environ["FEATPIPE_PIPELINES"])
    if Path("pipelines").is_dir():
        return Path("pipelines")
    return Path(__file__).resolve().parents[1] / "pipelines"


def list_pipelines(pipelines_dir=None):
    """Return the named pipelines, sorted by name, as PipelineSpecs."""
    folder = Path(pipelines_dir) if pipelines_dir else default_pipelines_dir()
    return [load_pipeline_file(path) for path in sorted(folder.glob("*.toml"))]


def resolve(name, pipelines_dir=None):
    """Turn what the user typed into a PipelineSpec.

    ``name`` may be a path to a ``.toml`` file, the name of a file in the
    pipelines folder, or a spec string.

    Raises
    ------
    SpecError
        With the valid names listed, when nothing matches.
    """
    if name.endswith(".toml"):
        return load_pipeline_file(name)
    folder = Path(pipelines_dir) if pipelines_dir else default_pipelines_dir()
    named = folder / f"{name}.toml"
    if named.is_file():
        return load_pipeline_file(named)
    try:
        return parse_spec(name)
    except SpecError as error:
        known = sorted(path.stem for path in folder.glob("*.toml"))
        listing = f"; named pipelines: {', '.join(known)}" if known else ""
        raise SpecError(f"{error}{listing}") from None
