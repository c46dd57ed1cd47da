"""Tests of the soft-threshold patch features (featpipe.features.patches) and their compiled pass."""

import math
from dataclasses import replace

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from featpipe.features._soft_threshold import add_soft_threshold
from featpipe.features.patch_rows import mirrored_columns
from featpipe.features.patches import SoftThresholdPatches, _add_rows_by_label, _omp1_mirror_pairs, sum_mirror_pairs
from featpipe.features.regions import RegionLayout, cell_bounds, mirrored_regions
from featpipe.pipeline.augment import append_permuted_rows, mirror_permutation_for
from helpers import cifar_subset, ridge_accuracy


def _random_images(n=5, height=12, width=11, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)


def _symmetric_cells(n_positions, level):
    """The definition: cell i covers positions floor(i n / L) .. ceil((i + 1) n / L) - 1."""
    return [np.arange(math.floor(i * n_positions / level), math.ceil((i + 1) * n_positions / level))
            for i in range(level)]


def _naive_features(model, images, levels):
    """Per-patch loop in float64: normalize, whiten (and project), code, threshold both signs, pool per cell."""
    side, stride, alpha = model.patch_size, model.stride, model.alpha
    atoms = model.atoms_.astype(np.float64)
    rows = np.arange(0, images.shape[1] - side + 1, stride)
    cols = np.arange(0, images.shape[2] - side + 1, stride)
    features = []
    for image in images:
        activations = np.zeros((len(rows), len(cols), 2 * len(atoms)))
        for i, row in enumerate(rows):
            for j, col in enumerate(cols):
                patch = image[row:row + side, col:col + side].astype(np.float64).ravel()
                patch = (patch - patch.mean()) / np.sqrt(patch.var(ddof=1) + model.contrast_eps)
                whitened = (patch - model.patch_mean_) @ model.whitening_.astype(np.float64)
                if model.components_ is not None:
                    components = model.components_.astype(np.float64)
                    whitened = components.T @ (components @ whitened)
                codes = atoms @ whitened
                activations[i, j] = np.concatenate([np.maximum(0, codes - alpha), np.maximum(0, -codes - alpha)])
        pooled = []
        for level in levels:
            for cell_rows in _symmetric_cells(len(rows), level):
                for cell_cols in _symmetric_cells(len(cols), level):
                    pooled.append(activations[np.ix_(cell_rows, cell_cols)].sum(axis=(0, 1)) ** model.power)
        features.append(np.concatenate(pooled))
    return np.array(features)


@pytest.mark.parametrize("dictionary", ["random", "omp1"])
@pytest.mark.parametrize(("pooling", "levels"), [("global", (1,)), ("quadrants", (2,)), ((1, 2, 3), (1, 2, 3))])
def test_features_match_a_per_patch_loop(dictionary, pooling, levels):
    images = _random_images()
    model = SoftThresholdPatches(n_atoms=6, patch_size=4, n_patches=400, dictionary=dictionary, pooling=pooling,
                                 alpha=0.3, patches_per_block=7, random_state=0).fit(images)
    features = model.transform(images)
    expected = _naive_features(model, images, levels)
    assert features.dtype == np.float32
    assert features.shape == expected.shape == (len(images), model.n_features_out_)
    assert features.min() >= 0
    assert (features > 0).mean() > 0.5  # the threshold leaves most pooled sums alive
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)


def test_stride_power_and_zero_threshold_match_a_per_patch_loop():
    images = _random_images(n=3, height=13, width=13, seed=1)
    model = SoftThresholdPatches(n_atoms=4, patch_size=3, stride=2, n_patches=300, alpha=0.0, power=0.5,
                                 whiten_eps=0.5, random_state=1).fit(images)
    np.testing.assert_allclose(model.transform(images), _naive_features(model, images, (2,)), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("pooling", ["quadrants", (1, 2)])
def test_projected_features_match_a_per_patch_loop_and_the_mirror_permutation(pooling):
    images = _random_images(n=4, height=12, width=12, seed=3)
    model = SoftThresholdPatches(n_atoms=6, patch_size=4, n_patches=2000, n_components=20, dictionary="omp1",
                                 pooling=pooling, alpha=0.1, patches_per_block=7, random_state=0).fit(images)
    features = model.transform(images)
    levels = (2,) if pooling == "quadrants" else pooling
    np.testing.assert_allclose(features, _naive_features(model, images, levels), rtol=1e-4, atol=1e-4)
    unprojected = SoftThresholdPatches(**{**model.get_params(), "n_components": None}).fit(images)
    np.testing.assert_array_equal(unprojected.atoms_, model.atoms_)
    assert not np.allclose(features, unprojected.transform(images), rtol=1e-3)  # 20 of 48 directions: not exact
    np.testing.assert_allclose(model.transform(images[:, :, ::-1]), features[:, model.mirror_permutation()],
                               rtol=1e-4, atol=1e-4 * features.max())


def test_all_components_give_the_unprojected_features():
    images = _random_images(n=3, height=10, width=10, seed=4)
    params = dict(n_atoms=8, patch_size=3, n_patches=1000, random_state=0)
    exact = SoftThresholdPatches(**params).fit(images)
    projected = SoftThresholdPatches(**params, n_components=27).fit(images)
    assert exact.components_ is None and projected.components_.shape == (27, 27)
    features = exact.transform(images)
    np.testing.assert_allclose(projected.transform(images), features, rtol=1e-4, atol=1e-5 * features.max())


def test_leading_directions_span_the_patches_of_images_made_of_colour_ramps():
    # Every 3 x 3 patch of these images is a constant per channel plus a horizontal and a vertical ramp per
    # channel (and faint noise): after normalization, 8 directions hold the patches (3 + 3 ramps, 2 channel
    # offsets), so the 8 leading components must span them.
    rng = np.random.default_rng(7)
    grid = np.arange(16, dtype=np.float64) - 7.5
    slopes = rng.uniform(-6, 6, size=(2, 40, 1, 1, 3))
    images = 128 + slopes[0] * grid[None, None, :, None] + slopes[1] * grid[None, :, None, None]
    images = np.clip(np.rint(images + rng.normal(0, 0.3, images.shape)), 0, 255).astype(np.uint8)
    model = SoftThresholdPatches(n_atoms=4, patch_size=3, n_patches=5000, n_components=8, random_state=0).fit(images)
    components = model.components_.astype(np.float64)
    np.testing.assert_allclose(components @ components.T, np.eye(8), atol=1e-5)
    mirror = mirrored_columns(3)
    for component in components:  # each direction is its own mirror image or its negative
        assert min(np.abs(component[mirror] - component).max(), np.abs(component[mirror] + component).max()) < 1e-4
    offsets = np.arange(3, dtype=np.float64) - 1
    basis = []
    for channel in range(3):
        for ramp in (offsets[None, :] + 0 * offsets[:, None], offsets[:, None] + 0 * offsets[None, :],
                     np.ones((3, 3))):
            vector = np.zeros((3, 3, 3))
            vector[:, :, channel] = ramp
            basis.append(vector.ravel())
    basis = np.array(basis)
    basis -= basis.mean(axis=1, keepdims=True)  # normalization removes each patch's mean
    span, singular, _ = np.linalg.svd(basis.T, full_matrices=False)
    span = span[:, singular > 1e-9]
    assert span.shape[1] == 8
    np.testing.assert_allclose(components.T @ components, span @ span.T, atol=0.02)


def test_dictionary_is_unit_norm_and_closed_under_mirroring():
    model = SoftThresholdPatches(n_atoms=10, patch_size=3, n_patches=500, dictionary="omp1",
                                 random_state=0).fit(_random_images())
    mirror = mirrored_columns(3)
    np.testing.assert_allclose(np.linalg.norm(model.atoms_, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(model.atoms_[5:], model.atoms_[:5][:, mirror])
    np.testing.assert_array_equal(model.whitening_[np.ix_(mirror, mirror)], model.whitening_)
    np.testing.assert_array_equal(model.patch_mean_[mirror], model.patch_mean_)


def test_mirrored_columns_flip_a_patch_left_to_right():
    patch = np.random.default_rng(0).random((4, 4, 3))
    np.testing.assert_array_equal(patch.ravel()[mirrored_columns(4)], patch[:, ::-1].ravel())


@pytest.mark.parametrize(("pooling", "shape"), [("quadrants", (32, 32)), ((1, 2, 3), (15, 17)), ((4,), (20, 33))])
def test_features_of_mirrored_images_are_the_mirror_permutation(pooling, shape):
    images = _random_images(n=6, height=shape[0], width=shape[1], seed=2)
    model = SoftThresholdPatches(n_atoms=12, n_patches=3000, pooling=pooling, random_state=0).fit(images)
    features = model.transform(images)
    permutation = model.mirror_permutation()
    np.testing.assert_array_equal(np.sort(permutation), np.arange(model.n_features_out_))
    np.testing.assert_array_equal(permutation[permutation], np.arange(model.n_features_out_))
    assert not np.allclose(features, features[:, permutation])
    np.testing.assert_allclose(model.transform(images[:, :, ::-1]), features[:, permutation],
                               rtol=1e-4, atol=1e-4 * features.max())


@pytest.mark.parametrize(("pooling", "shape"), [("quadrants", (32, 32)), ((1, 2, 3), (15, 17))])
def test_mirror_invariant_features_are_each_mirror_pair_summed_once(pooling, shape):
    images = _random_images(n=6, height=shape[0], width=shape[1], seed=5)
    params = dict(n_atoms=12, n_patches=3000, pooling=pooling, random_state=0)
    plain = SoftThresholdPatches(**params).fit(images)
    invariant = SoftThresholdPatches(**params, mirror_invariant=True).fit(images)
    features, mirrored = plain.transform(images), plain.transform(images[:, :, ::-1])
    permutation = plain.mirror_permutation()
    firsts = [j for j in range(len(permutation)) if j < permutation[j]]
    assert len(firsts) == invariant.n_features_out_ == plain.n_features_out_ // 2
    summed = invariant.transform(images)
    scale = 1e-4 * features.max()
    np.testing.assert_allclose(summed, (features + mirrored)[:, firsts], rtol=1e-4, atol=scale)
    np.testing.assert_allclose(summed, (features[:, firsts] + features[:, permutation[firsts]]), rtol=1e-4, atol=scale)
    np.testing.assert_allclose(invariant.transform(images[:, :, ::-1]), summed, rtol=1e-4, atol=scale)
    np.testing.assert_array_equal(invariant.mirror_permutation(), np.arange(invariant.n_features_out_))


def test_mirror_pairs_are_summed_the_same_a_few_rows_at_a_time():
    features = np.random.default_rng(6).random((7, 6), dtype=np.float32)
    permutation = np.array([3, 5, 4, 0, 2, 1])
    expected = features[:, [0, 1, 2]] + features[:, [3, 5, 4]]
    np.testing.assert_array_equal(sum_mirror_pairs(features, permutation, rows_per_step=2), expected)
    np.testing.assert_array_equal(sum_mirror_pairs(features, permutation), expected)


def test_no_permutation_when_the_patch_grid_is_not_its_own_mirror_image():
    images = _random_images(n=4, height=12, width=12, seed=4)
    model = SoftThresholdPatches(n_atoms=4, patch_size=3, stride=2, n_patches=300, random_state=0).fit(images)
    assert model.mirror_permutation() is None  # positions 0, 2, ..., 8 mirror to 9, 7, ..., 1
    assert mirror_permutation_for(model, ["hflip"]) is None
    with pytest.raises(ValueError, match="mirror_invariant needs a stride"):
        model.set_params(mirror_invariant=True).fit(images)
    symmetric = SoftThresholdPatches(n_atoms=4, patch_size=4, stride=2, n_patches=300, random_state=0).fit(images)
    features = symmetric.transform(images)
    np.testing.assert_allclose(symmetric.transform(images[:, :, ::-1]), features[:, symmetric.mirror_permutation()],
                               rtol=1e-4, atol=1e-4 * features.max())


def test_omp1_finds_planted_directions():
    """Samples near +-3 times six planted directions (three and their mirrors): OMP-1 recovers each one."""
    rng = np.random.default_rng(0)
    mirror = mirrored_columns(3)
    planted = rng.standard_normal((3, 27))
    planted = np.vstack([planted, planted[:, mirror]])
    planted /= np.linalg.norm(planted, axis=1, keepdims=True)
    samples = planted[rng.integers(0, 6, 6000)] * rng.choice([-3.0, 3.0], (6000, 1))
    samples = (samples + 0.2 * rng.standard_normal((6000, 27))).astype(np.float32)
    start = samples[rng.choice(6000, 6, replace=False)]
    start = (start / np.linalg.norm(start, axis=1, keepdims=True)).astype(np.float32)
    learned = _omp1_mirror_pairs(samples, start, mirror, n_iter=15)
    atoms = np.vstack([learned, learned[:, mirror]])
    assert np.abs(planted @ start.T).max(axis=1).min() < 0.9  # the start misses some
    assert np.abs(planted @ atoms.T).max(axis=1).min() > 0.95


def test_rows_are_added_by_label_as_a_loop_adds_them():
    rng = np.random.default_rng(8)
    totals = rng.standard_normal((6, 4))
    labels = rng.integers(0, 5, 50)  # label 5 never drawn: its row stays
    rows = rng.standard_normal((50, 4)).astype(np.float32)
    expected = totals.copy()
    for label, row in zip(labels, rows):
        expected[label] += row
    _add_rows_by_label(totals, labels, rows)
    np.testing.assert_allclose(totals, expected, rtol=1e-14, atol=1e-14)


def test_compiled_pass_matches_numpy_and_adds_to_the_targets():
    rng = np.random.default_rng(0)
    codes = rng.standard_normal((50, 37)).astype(np.float32)
    targets = rng.integers(0, 4, 50).astype(np.intp)
    sums = rng.random((4, 74)).astype(np.float32)
    expected = sums.astype(np.float64)
    for code, target in zip(codes.astype(np.float64), targets):
        expected[target] += np.concatenate([np.maximum(0, code - 0.4), np.maximum(0, -code - 0.4)])
    add_soft_threshold(codes, 0.4, targets, sums)
    np.testing.assert_allclose(sums, expected, rtol=1e-5)


@pytest.mark.parametrize(("codes", "alpha", "targets", "sums", "message"), [
    (np.zeros((3, 4)), 0.1, np.zeros(3), np.zeros((1, 7)), "2 [*] 4 columns"),
    (np.zeros((3, 4)), 0.1, np.zeros(2), np.zeros((1, 8)), "targets has 2 entries for 3 rows"),
    (np.zeros((3, 4)), -0.1, np.zeros(3), np.zeros((1, 8)), "alpha must be a non-negative"),
    (np.zeros((3, 4)), 0.1, np.array([0, 1, 2]), np.zeros((2, 8)), r"targets must lie in \[0, 2\)"),
])
def test_compiled_pass_refuses_inconsistent_arguments(codes, alpha, targets, sums, message):
    with pytest.raises(ValueError, match=message):
        add_soft_threshold(codes.astype(np.float32), alpha, targets.astype(np.intp), sums.astype(np.float32))


def test_symmetric_cells_are_their_own_mirror_image():
    starts, stops = cell_bounds(27, 2, symmetric=True)
    np.testing.assert_array_equal(starts, [0, 13])
    np.testing.assert_array_equal(stops, [14, 27])
    for n_positions, level in [(27, 2), (27, 3), (27, 4), (10, 3), (7, 7)]:
        starts, stops = cell_bounds(n_positions, level, symmetric=True)
        cells = [set(range(a, b)) for a, b in zip(starts, stops)]
        assert cells == [set(cell) for cell in _symmetric_cells(n_positions, level)]
        assert [{n_positions - 1 - p for p in cell} for cell in cells] == cells[::-1]
    layout = RegionLayout((2,), (27, 27), symmetric=True)
    np.testing.assert_array_equal(layout.region_sizes, [196, 196, 196, 196])
    np.testing.assert_array_equal(mirrored_regions((1, 2)), [0, 2, 1, 4, 3])


def test_invalid_parameters_are_refused():
    images = _random_images()
    for params, message in [
        ({"n_atoms": 7}, "n_atoms must be even"),
        ({"n_atoms": 0}, "n_atoms must be a positive integer"),
        ({"dictionary": "kmeans"}, "dictionary must be one of"),
        ({"alpha": -1.0}, "alpha must be a non-negative number"),
        ({"whiten_eps": 0}, "whiten_eps must be a positive number"),
        ({"n_atoms": 10, "n_patches": 4}, "n_patches [(]4[)] must be at least n_atoms / 2"),
        ({"pooling": (20,)}, "pyramid level 20 needs at least"),
        ({"n_threads": 0}, "n_threads must be None or a positive integer"),
        ({"mirror_invariant": "yes"}, "mirror_invariant must be True or False"),
        ({"n_components": 0}, "n_components must be None or an integer from 1 to 3 [*] patch_size[*][*]2 [(]108[)]"),
        ({"n_components": 109}, "n_components must be None or an integer from 1"),
        ({"n_components": 2.5}, "n_components must be None or an integer from 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            SoftThresholdPatches(**{"n_atoms": 4, "n_patches": 100, **params}).fit(images)
    with pytest.raises(ValueError, match="not fitted"):
        SoftThresholdPatches().mirror_permutation()


def test_threads_give_the_same_features_as_one():
    images = _random_images(n=7)
    model = SoftThresholdPatches(n_atoms=8, patch_size=3, n_patches=500, random_state=0, n_threads=1).fit(images)
    features = model.transform(images)
    np.testing.assert_array_equal(model.set_params(n_threads=3).transform(images), features)


def test_append_permuted_rows_and_when_a_permutation_is_used():
    features = np.arange(5 * 3 * 4, dtype=np.float32).reshape(15, 4)
    permutation = np.array([2, 0, 3, 1])
    np.testing.assert_array_equal(append_permuted_rows(features, permutation, rows_per_block=4),
                                  np.vstack([features, features[:, permutation]]))
    model = SoftThresholdPatches(n_atoms=4, patch_size=3, n_patches=100, random_state=0).fit(_random_images())
    np.testing.assert_array_equal(mirror_permutation_for(model, ["hflip"]), model.mirror_permutation())
    assert mirror_permutation_for(model, []) is None
    from featpipe.features.hog import HOG

    assert mirror_permutation_for(HOG(), ["hflip"]) is None


def test_hflip_pipeline_permutes_instead_of_extracting_the_mirrors(tmp_path, small_npz, monkeypatch):
    from sklearn.linear_model import LogisticRegression

    from featpipe.datasets import load_dataset
    from featpipe.model_io import load_model
    from featpipe.pipeline.run import run_pipeline
    from featpipe.pipeline.spec import parse_spec

    params = {"n_atoms": 8, "patch_size": 5, "n_patches": 2000}
    seen = []
    transform = SoftThresholdPatches._transform_images
    monkeypatch.setattr(SoftThresholdPatches, "_transform_images",
                        lambda self, images: seen.append(len(images)) or transform(self, images))
    spec = parse_spec("patches+logreg")
    spec = replace(spec, augment=("hflip",), features=(replace(spec.features[0], params=params),))
    result = run_pipeline(spec, data=str(small_npz), out=tmp_path / "run", cache_dir=tmp_path / "cache",
                          quiet=True, n_jobs=1)
    dataset = load_dataset(str(small_npz))
    n_images = len(dataset.y_train) + len(dataset.y_val) + len(dataset.y_test)
    assert sum(seen) == n_images  # no mirrored image was extracted
    assert result.metrics["dataset"]["n_train"] == 2 * len(dataset.y_train)
    patches = SoftThresholdPatches(**params, random_state=0).fit(dataset.X_train)
    features = np.vstack([patches.transform(dataset.X_train), patches.transform(dataset.X_train[:, :, ::-1])])
    scaler = StandardScaler().fit(features)
    reference = LogisticRegression(random_state=0).fit(scaler.transform(features),
                                                       np.concatenate([dataset.y_train] * 2))
    model = load_model(result.run_dir / "model.skops")
    np.testing.assert_allclose(model.named_steps["head"].coef_, reference.coef_, rtol=1e-3, atol=1e-3)


def test_hflip_pipeline_hands_featpipes_head_the_permutation_not_the_rows(tmp_path, small_npz, monkeypatch):
    from featpipe.datasets import load_dataset
    from featpipe.heads.linear import LinearSVM
    from featpipe.heads.mirrored_rows import MirroredRows
    from featpipe.model_io import load_model
    from featpipe.pipeline.run import run_pipeline
    from featpipe.pipeline.spec import parse_spec

    params = {"n_atoms": 8, "patch_size": 5, "n_patches": 2000}
    head_params = {"squared": True, "multi_class": "ovr", "optimizer": "lbfgs", "init": "least_squares",
                   "reg": 0.3, "n_epochs": 10}
    trained_on = []
    fit = LinearSVM.fit
    monkeypatch.setattr(LinearSVM, "fit", lambda self, X, y, **kw: trained_on.append(type(X)) or fit(self, X, y, **kw))
    spec = parse_spec("patches+svm")
    spec = replace(spec, augment=("hflip",), features=(replace(spec.features[0], params=params),),
                   head=replace(spec.head, params=head_params))
    result = run_pipeline(spec, data=str(small_npz), out=tmp_path / "run", cache_dir=tmp_path / "cache",
                          quiet=True, n_jobs=1)
    assert trained_on == [MirroredRows]
    dataset = load_dataset(str(small_npz))
    patches = SoftThresholdPatches(**params, random_state=0).fit(dataset.X_train)
    features = np.vstack([patches.transform(dataset.X_train), patches.transform(dataset.X_train[:, :, ::-1])])
    labels = np.concatenate([dataset.y_train] * 2)
    reference = LinearSVM(**head_params, random_state=0).fit(StandardScaler().fit_transform(features), labels)
    head = load_model(result.run_dir / "model.skops").named_steps["head"]
    # Equal objectives step by step; the weights to float32 rounding.
    assert len(reference.loss_history_) > 1
    np.testing.assert_allclose(head.loss_history_, reference.loss_history_, rtol=1e-4)
    np.testing.assert_allclose(head.coef_, reference.coef_, atol=2e-3 * np.abs(reference.coef_).max())




@pytest.mark.cifar
def test_soft_threshold_patches_beat_raw_pixels_on_acifar_subset():
    X_train, y_train = cifar_subset("train", 100, seed=0)
    X_test, y_test = cifar_subset("test", 50, seed=1)
    patches = SoftThresholdPatches(n_atoms=100, n_patches=20_000, random_state=0).fit(X_train)

    patches_accuracy = ridge_accuracy(patches.transform(X_train), y_train, patches.transform(X_test), y_test)
    raw_accuracy = ridge_accuracy(X_train.reshape(len(X_train), -1).astype(np.float32), y_train,
                                  X_test.reshape(len(X_test), -1).astype(np.float32), y_test)
    # Measured: 0.456 here (100 atoms, ridge head), raw pixels 0.322.
    assert patches_accuracy > 0.42
    assert patches_accuracy > raw_accuracy + 0.1
