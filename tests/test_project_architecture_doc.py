"""docs/ARCHITECTURE.md tells the truth: its metrics.json example has the keys a real run writes."""

import json
import re
from pathlib import Path

from featpipe.pipeline.options import RunOptions
from featpipe.pipeline.run import run_pipeline
from featpipe.pipeline.spec import parse_spec

ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "ARCHITECTURE.md"


def _documented_metrics():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    block = re.search(r"`metrics.json`:\s*```json\n(.*?)```", text, re.S)
    assert block, "docs/ARCHITECTURE.md has no metrics.json example"
    return json.loads(block.group(1))


def _key_paths(value, prefix=""):
    """Every key path of a JSON value; dicts keyed by data (a placeholder like "<class>") count as one."""
    if isinstance(value, dict):
        paths = set()
        for key, item in value.items():
            name = "<key>" if key.startswith("<") or prefix.endswith(("feature_widths", "test")) else key
            paths |= {f"{prefix}.{name}"} | _key_paths(item, f"{prefix}.{name}")
        return paths
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return _key_paths(value[0], f"{prefix}[]")
    return set()


def test_the_documented_metrics_json_has_the_keys_of_a_real_run(tmp_path, small_npz):
    documented = _documented_metrics()
    options = RunOptions(cache_dir=tmp_path / "cache", n_jobs=1, quiet=True, search=True)
    real = run_pipeline(parse_spec(documented["spec"]), str(small_npz), options=options,
                        out=tmp_path / "run").metrics
    written = json.loads((tmp_path / "run" / "metrics.json").read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(real))
    assert _key_paths(documented) == _key_paths(written)


def test_the_key_paths_see_a_missing_nested_key():
    assert _key_paths({"a": {"b": 1}}) != _key_paths({"a": {"c": 1}})
    assert _key_paths({"per_class_accuracy": {"test": {"<class>": 0.0}}}) == _key_paths(
        {"per_class_accuracy": {"test": {"cat": 0.5, "dog": 0.25}}})
