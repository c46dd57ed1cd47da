"""Model files load only what a featpipe pipeline is made of; hostile files run nothing."""

import json
import zipfile

import numpy as np
import pytest
import skops.io as sio
from click.testing import CliRunner
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import StandardScaler

import featpipe.store
from featpipe.cli import cli
from featpipe.model_io import ALLOWED_TYPES, ModelFileError, load_model, save_model
from featpipe.pipeline.registry import FEATURES, HEADS, make_feature, make_head
from hostile import PAYLOADS, nested_payload_file, payload_node, rewrite_schema, root_payload_file

SMALL_PARAMS = {"words": {"n_words": 8, "n_patches": 2000}, "bow": {"n_words": 8, "n_patches": 2000}}
LIVE_PAYLOADS = ("exec", "eval", "os.system", "subprocess")


def _images(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n) % 3


def _fitted_pipeline(feature, head, scaled=True):
    images, labels = _images()
    extractor = make_feature(feature, SMALL_PARAMS.get(feature))
    if "random_state" in extractor.get_params():
        extractor.set_params(random_state=0)
    extractor.fit(images)
    features = extractor.transform(images)
    scaler = StandardScaler().fit(features) if scaled else None
    fitted_head = make_head(head).fit(scaler.transform(features) if scaled else features, labels)
    return Pipeline([("features", FeatureUnion([(feature, extractor)])),
                     ("normalize", scaler if scaled else "passthrough"), ("head", fitted_head)])


def _file_types(path):
    schema = json.loads(zipfile.ZipFile(path).read("schema.json"))
    found, pending = set(), [schema]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if "__loader__" in item:
                found.add(f"{item['__module__']}.{item['__class__']}")
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


@pytest.fixture(scope="module")
def real_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.skops"
    save_model(_fitted_pipeline("hog", "svm"), path)
    return path


def test_every_feature_and_head_saves_loads_and_needs_only_allowed_types(tmp_path):
    images, _ = _images(seed=1)
    seen = set()
    for feature in FEATURES:
        for head in HEADS:
            model = _fitted_pipeline(feature, head, scaled=head != "logreg")
            save_model(model, tmp_path / "model.skops")
            seen |= _file_types(tmp_path / "model.skops")
            loaded = load_model(tmp_path / "model.skops")
            np.testing.assert_array_equal(loaded.predict(images), model.predict(images))
    assert seen <= ALLOWED_TYPES
    classes = {name for name in ALLOWED_TYPES if name.startswith(("featpipe.", "sklearn."))}
    assert classes <= seen, f"allowed but never saved: {sorted(classes - seen)}"


@pytest.mark.parametrize(("feature", "newer"), [("patches", ("n_components", "components_", "mirror_invariant")),
                                              ("hog", ("mirror_invariant",))])
def test_a_model_saved_before_a_parameter_existed_loads_with_its_default(tmp_path, feature, newer):
    images, _ = _images(seed=2)
    model = _fitted_pipeline(feature, "softmax")
    expected = model.predict(images)
    extractor = model.steps[0][1].transformer_list[0][1]
    for name in newer:  # what a file from before these parameters holds
        delattr(extractor, name)
    save_model(model, tmp_path / "old.skops")
    loaded = load_model(tmp_path / "old.skops")
    np.testing.assert_array_equal(loaded.predict(images), expected)
    assert loaded.steps[0][1].transformer_list[0][1].mirror_invariant is False


def test_saved_bytes_do_not_depend_on_the_process(tmp_path):
    model = _fitted_pipeline("words", "softmax")
    save_model(model, tmp_path / "first.skops")
    save_model(load_model(tmp_path / "first.skops"), tmp_path / "second.skops")
    assert (tmp_path / "first.skops").read_bytes() == (tmp_path / "second.skops").read_bytes()


@pytest.mark.parametrize("kind", LIVE_PAYLOADS)
def test_hostile_files_are_live_for_a_loader_that_trusts_their_types(tmp_path, kind):
    """The control: skops with the types the file asks for trusted runs the payload."""
    path = root_payload_file(tmp_path / "model.skops", kind, tmp_path / "marker")
    sio.load(path, trusted=sio.get_untrusted_types(file=path))
    assert (tmp_path / "marker").exists()


@pytest.mark.parametrize("kind", PAYLOADS)
@pytest.mark.parametrize("where", ["root", "nested"])
def test_hostile_model_is_refused_naming_its_type_and_runs_nothing(tmp_path, real_model, kind, where):
    marker = tmp_path / "marker"
    path = tmp_path / "model.skops"
    if where == "root":
        root_payload_file(path, kind, marker)
    else:
        nested_payload_file(real_model, path, kind, marker)
    named = f"{payload_node(kind, marker)['__module__']}.{payload_node(kind, marker)['__class__']}"
    with pytest.raises(ModelFileError, match=rf"asks for {named} through skops' ConstructorFromReduceNode"):
        load_model(path)
    assert not marker.exists()


def test_a_plain_object_node_of_a_foreign_class_is_refused(tmp_path, real_model):
    def foreign(schema):
        schema["__module__"], schema["__class__"] = "collections", "OrderedDict"
        return schema

    path = tmp_path / "model.skops"
    path.write_bytes(rewrite_schema(real_model.read_bytes(), foreign))
    with pytest.raises(ModelFileError, match="asks for type collections.OrderedDict, which is not part"):
        load_model(path)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not a zip", b"\x80\x04pickle"])
def test_damaged_files_are_refused_in_one_line(tmp_path, content):
    path = tmp_path / "model.skops"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="is not a featpipe model file"):
        load_model(path)


@pytest.mark.parametrize("kind", LIVE_PAYLOADS)
def test_predict_with_a_hostile_run_folder_exits_2_and_runs_nothing(tmp_path, real_model, kind):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text(json.dumps({"dataset": {"image_size": 32, "classes": ["a", "b", "c"]}}))
    nested_payload_file(real_model, run_dir / "model.skops", kind, tmp_path / "marker")
    image = tmp_path / "image.npy"
    image.write_bytes(b"")
    result = CliRunner().invoke(cli, ["predict", str(run_dir), str(image)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "ConstructorFromReduceNode" in result.stderr
    assert result.stderr.startswith("featpipe: error: ")
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize("kind", LIVE_PAYLOADS)
def test_hostile_store_extractors_are_refused_by_run_and_by_the_reader(tmp_path, small_npz, kind):
    store = tmp_path / "store"
    runner = CliRunner()
    extracted = runner.invoke(cli, ["extract", "raw", "--data", str(small_npz), "--out", str(store),
                                    "--jobs", "1", "--quiet"])
    assert extracted.exit_code == 0, extracted.output
    real = tmp_path / "real.skops"
    real.write_bytes((store / "extractors.skops").read_bytes())
    nested_payload_file(real, store / "extractors.skops", kind, tmp_path / "marker")
    with pytest.raises(ModelFileError):
        featpipe.store.open(store).load_extractors()
    result = runner.invoke(cli, ["run", "raw+svm", "--data", str(store), "--out", str(tmp_path / "run"),
                                 "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 2
    assert "ConstructorFromReduceNode" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "marker").exists() and not (tmp_path / "run").exists()


def test_zip_bombs_are_refused_before_unpacking(tmp_path, monkeypatch):
    import featpipe.model_io

    path = tmp_path / "model.skops"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("schema.json", json.dumps({"padding": " " * 2_000_000}))
    monkeypatch.setattr(featpipe.model_io, "MAX_SCHEMA_BYTES", 1_000_000)
    with pytest.raises(ModelFileError, match="has a schema of more than"):
        load_model(path)
    monkeypatch.setattr(featpipe.model_io, "MAX_UNPACKED_BYTES", 1_000_000)
    with pytest.raises(ModelFileError, match="unpacks to more than"):
        load_model(path)
