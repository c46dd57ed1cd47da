"""Spec strings, pipeline files and the name registry."""

import re

import pytest

from featpipe.pipeline.registry import UnknownNameError, make_feature, make_head
from featpipe.pipeline.spec import SpecError, list_pipelines, load_pipeline_file, parse_features, parse_spec, resolve


def test_parse_spec_splits_features_and_head():
    spec = parse_spec("hog+color+softmax")
    assert [step.name for step in spec.features] == ["hog", "color"]
    assert spec.head.name == "softmax"
    assert spec.normalize == "standard"
    assert spec.to_dict()["head"] == {"name": "softmax", "params": {}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hog", "not a pipeline spec"),
        ("+svm", "not a pipeline spec"),
        ("foo+svm", "unknown feature 'foo' in 'foo+svm'"),
        ("hog+bar", "unknown head 'bar'"),
        ("hog+hog+svm", "names a feature twice"),
        ("hog++svm", "not a feature spec"),
    ],
)
def test_parse_spec_rejects_bad_specs_with_the_valid_names(text, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_spec(text)


def test_unknown_feature_error_lists_valid_features():
    with pytest.raises(SpecError, match="valid features: bow, color, hog, raw, words"):
        parse_features("sift")


def test_pipeline_file_round_trip(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        'description = "test"\n'
        '[[features]]\nname = "raw"\n'
        '[[features]]\nname = "color"\nnbins = 12\n'
        '[normalize]\nmethod = "none"\n'
        '[head]\nname = "logreg"\nC = 0.5\n'
        '[data]\nimage_size = 16\n'
        '[search]\nregs = [0.1, 1.0]\n'
    )
    spec = load_pipeline_file(path)
    assert spec.name == "mine"
    assert spec.features[1].params == {"nbins": 12}
    assert spec.head.params == {"C": 0.5}
    assert spec.normalize == "none"
    assert spec.data == {"image_size": 16}
    assert spec.search == {"regs": [0.1, 1.0]}
    assert resolve(str(path)) == spec
    assert resolve("mine", pipelines_dir=tmp_path) == spec
    assert [found.name for found in list_pipelines(tmp_path)] == ["mine"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[features]\nname=", "not valid TOML"),
        ('[head]\nname = "svm"\n', "at least one"),
        ('[[features]]\nname = "raw"\n', r"needs a \[head\]"),
        ('[[features]]\nname = "sift"\n[head]\nname = "svm"\n', "unknown features 'sift'"),
        ('[[features]]\nname = "raw"\n[head]\nname = "svm"\n[normalize]\nmethod = "l2"\n', "normalize method"),
        ('[[features]]\nname = "raw"\n[head]\nname = "svm"\n[extra]\n', "unknown section"),
    ],
)
def test_malformed_pipeline_files_raise_one_clear_error(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SpecError, match=message):
        load_pipeline_file(path)


def test_unknown_name_lists_the_named_pipelines(tmp_path):
    (tmp_path / "hog+svm.toml").write_text('[[features]]\nname = "hog"\n[head]\nname = "svm"\n')
    with pytest.raises(SpecError, match="named pipelines: hog[+]svm"):
        resolve("nothing", pipelines_dir=tmp_path)


def test_every_shipped_pipeline_file_builds():
    shipped = list_pipelines()
    assert {"raw+svm", "hog+svm", "hog+color+svm"} <= {spec.name for spec in shipped}
    for spec in shipped:
        for step in spec.features:
            make_feature(step.name, step.params)
        make_head(spec.head.name, spec.head.params)


def test_registry_rejects_unknown_parameters():
    with pytest.raises(UnknownNameError, match="unknown parameter.*'logreg'"):
        make_head("logreg", {"learning_rate": 1.0})
    assert make_head("logreg", {"C": 2.0}).C == 2.0


def test_augment_list_is_read_and_checked(tmp_path):
    body = '[[features]]\nname = "hog"\n[head]\nname = "svm"\n'
    (tmp_path / "flip.toml").write_text('augment = ["hflip"]\n' + body)
    assert load_pipeline_file(tmp_path / "flip.toml").augment == ("hflip",)
    assert load_pipeline_file(tmp_path / "flip.toml").to_dict()["augment"] == ["hflip"]
    (tmp_path / "bad.toml").write_text('augment = ["rotate"]\n' + body)
    with pytest.raises(SpecError, match="unknown augmentation 'rotate'; valid: hflip"):
        load_pipeline_file(tmp_path / "bad.toml")
    (tmp_path / "text.toml").write_text('augment = "hflip"\n' + body)
    with pytest.raises(SpecError, match="augment must be a list"):
        load_pipeline_file(tmp_path / "text.toml")
