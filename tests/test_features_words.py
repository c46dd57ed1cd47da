"""Tests of the k-means visual words (featpipe.features.words) and their montage."""

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.utils import check_random_state

from featpipe.features import words as words_module
from featpipe.features._triangle import add_triangle_activations, available_kernels
from featpipe.features.patch_rows import normalize_patches, sample_patches
from featpipe.features.plotting import plot_words, word_montage
from featpipe.features.regions import RegionLayout
from featpipe.features.words import (
    KMeansWords,
    _block_atom_sums,
    _right_operand,
    _triangle_kernel,
    _word_panels,
)
from helpers import cifar_subset, ridge_accuracy

matplotlib.use("Agg")

# Ways to compute triangle sums on this CPU: its compiled tiles, and numpy (every CPU).
TRIANGLE_IMPLEMENTATIONS = available_kernels() + ["numpy"]


@pytest.fixture
def use_triangle(monkeypatch):
    """Make KMeansWords encode with the given triangle implementation."""
    return lambda implementation: monkeypatch.setattr(words_module, "_triangle_kernel", lambda: implementation)


def _random_images(n=6, height=12, width=11, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)


def _naive_whitened_patch(model, patch):
    """One patch, the paper's way, in float64: normalize, subtract the mean, whiten."""
    values = patch.astype(np.float64).ravel()
    values = (values - values.mean()) / np.sqrt(values.var(ddof=1) + model.contrast_eps)
    if model.whitening_ is None:
        return values
    return (values - model.patch_mean_) @ model.whitening_.astype(np.float64)


def _naive_features(model, images, levels):
    """Per-patch loop over every image and position, then pooling per pyramid cell."""
    side, stride = model.patch_size, model.stride
    words = model.words_.astype(np.float64)
    rows = np.arange(0, images.shape[1] - side + 1, stride)
    cols = np.arange(0, images.shape[2] - side + 1, stride)
    features = []
    for image in images:
        codes = np.zeros((len(rows), len(cols), len(words)))
        for i, row in enumerate(rows):
            for j, col in enumerate(cols):
                whitened = _naive_whitened_patch(model, image[row:row + side, col:col + side])
                distances = np.sqrt(((whitened - words) ** 2).sum(axis=1))
                if model.encoding == "triangle":
                    codes[i, j] = np.maximum(0, distances.mean() - distances)
                else:
                    codes[i, j, np.argmin(distances)] = 1
        pooled = []
        for level in levels:
            for cell_rows in np.array_split(np.arange(len(rows)), level):
                for cell_cols in np.array_split(np.arange(len(cols)), level):
                    cell = codes[np.ix_(cell_rows, cell_cols)].sum(axis=(0, 1))
                    if model.encoding == "hard":
                        cell /= len(cell_rows) * len(cell_cols)
                    pooled.append(cell)
        features.append(np.concatenate(pooled))
    return np.array(features)


@pytest.mark.parametrize(
    ("encoding", "implementation"),
    [("triangle", implementation) for implementation in TRIANGLE_IMPLEMENTATIONS] + [("hard", "numpy")],
)
@pytest.mark.parametrize(
    ("pooling", "levels"), [("global", (1,)), ("quadrants", (2,)), ((1, 2, 3), (1, 2, 3))]
)
def test_features_match_a_per_patch_loop(encoding, implementation, pooling, levels, use_triangle):
    use_triangle(implementation)
    images = _random_images()
    model = KMeansWords(n_words=5, patch_size=4, n_patches=400, encoding=encoding, pooling=pooling,
                        patches_per_block=7, random_state=0).fit(images)
    features = model.transform(images)
    expected = _naive_features(model, images, levels)
    assert features.dtype == np.float32
    assert features.shape == expected.shape
    assert features.min() >= 0  # activations and counts: never a negative rounding error
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("implementation", TRIANGLE_IMPLEMENTATIONS)
@pytest.mark.parametrize("whiten", [True, False])
def test_stride_and_no_whitening_match_a_per_patch_loop(whiten, implementation, use_triangle):
    use_triangle(implementation)
    images = _random_images(n=4, height=13, width=13, seed=1)
    model = KMeansWords(n_words=6, patch_size=3, stride=2, whiten=whiten, n_patches=300,
                        random_state=1).fit(images)
    np.testing.assert_allclose(model.transform(images), _naive_features(model, images, (2,)),
                               rtol=1e-4, atol=1e-4)


def _rows_and_reference_activations(n_words=37):
    """Design rows of 3 small images and their triangle activations in float64.

    37 words fill two panels of 32, the second one partly; 147 patches end
    in a partial tile of 14. The first patch equals a word, with ``||w||^2``
    a little too small, so its distance 0 comes out as a negative square.
    """
    images = _random_images(n=3, height=9, width=9)
    model = KMeansWords(n_words=n_words, patch_size=3, n_patches=300, random_state=0).fit(images)
    rows = model._design_rows(images, RegionLayout((1,), (7, 7)), with_norm=True).reshape(-1, 29)
    rows[0, :27] = model.words_[0]
    rows[0, 27] = model.words_[0] @ model.words_[0] - 1e-3
    whitened = np.array([_naive_whitened_patch(model, images[i, r:r + 3, c:c + 3])
                         for i in range(3) for r, c in np.ndindex(7, 7)])
    whitened[0] = model.words_[0]
    distances = euclidean_distances(whitened, model.words_.astype(np.float64))
    activations = np.maximum(0, distances.mean(axis=1, keepdims=True) - distances)
    return rows, model.words_, activations


@pytest.mark.parametrize("kernel", available_kernels())
def test_triangle_activations_match_sklearn_pairwise_distances(kernel):
    rows, words, expected = _rows_and_reference_activations()
    sums = np.zeros(expected.shape, dtype=np.float32)
    add_triangle_activations(rows, _word_panels(words), 37, np.arange(len(rows)), sums, kernel)
    assert np.all(np.isfinite(sums)) and sums.min() >= 0
    # atol: where a patch is a word (patch 3 is word 25), the true distance 0 comes out as
    # the root of float32 rounding in ||w||^2 - 2 w.c + ||c||^2, about sqrt(1e-5).
    np.testing.assert_allclose(sums, expected, rtol=1e-4, atol=5e-3)


@pytest.mark.parametrize("kernel", available_kernels())
def test_triangle_activations_add_up_in_their_target_rows(kernel):
    rows, words, activations = _rows_and_reference_activations()
    targets = np.random.default_rng(0).integers(0, 5, len(rows))
    expected = np.zeros((5, activations.shape[1]))
    np.add.at(expected, targets, activations)
    sums = np.ones((5, activations.shape[1]), dtype=np.float32)
    add_triangle_activations(rows, _word_panels(words), 37, targets, sums, kernel)
    np.testing.assert_allclose(sums, expected + 1, rtol=1e-4, atol=5e-3)


def test_numpy_triangle_sums_match_sklearn_pairwise_distances():
    rows, words, activations = _rows_and_reference_activations()
    right_t = np.ascontiguousarray(_right_operand(words, with_norm=True).T)
    sums = _block_atom_sums(rows.reshape(3, 49, -1), right_t, RegionLayout((1,), (7, 7)), patches_per_block=5)
    assert np.all(np.isfinite(sums)) and sums.min() >= 0
    np.testing.assert_allclose(sums[:, 0], activations.reshape(3, 49, -1).sum(axis=1), rtol=1e-4, atol=5e-3)


def test_the_fastest_tile_the_cpu_flags_allow_is_used():
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("reads the CPU flags from /proc/cpuinfo (Linux)")
    flags = set(next(line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")).split())
    expected = (["avx512"] if "avx512f" in flags else []) + (["avx2"] if {"avx2", "fma"} <= flags else [])
    assert available_kernels() == expected
    assert _triangle_kernel() == (expected + ["numpy"])[0]


@pytest.mark.parametrize("kernel", available_kernels())
def test_triangle_activations_refuse_mismatched_shapes(kernel):
    rows, words, activations = _rows_and_reference_activations()
    panels = _word_panels(words)
    sums = np.zeros(activations.shape, dtype=np.float32)
    targets = np.arange(len(rows))
    with pytest.raises(ValueError, match="panels must have shape"):
        add_triangle_activations(rows[:, :28].copy(), panels, 37, targets, sums, kernel)
    with pytest.raises(ValueError, match="does not fit"):
        add_triangle_activations(rows, panels, 65, targets, sums, kernel)
    with pytest.raises(ValueError, match="entries for"):
        add_triangle_activations(rows, panels, 37, targets[1:], sums, kernel)
    with pytest.raises(ValueError, match="must lie in"):
        add_triangle_activations(rows, panels, 37, targets + 1, sums, kernel)
    with pytest.raises(ValueError, match="kernel must be"):
        add_triangle_activations(rows, panels, 37, targets, sums, "neon")


def test_whitened_patches_have_identity_covariance():
    images = _random_images(n=20, height=16, width=16, seed=2)
    model = KMeansWords(n_words=4, patch_size=3, n_patches=5000, whiten_eps=1e-9,
                        random_state=3).fit(images)
    patches = sample_patches(images, 3, 5000, check_random_state(3))
    normalize_patches(patches, model.contrast_eps)
    whitened = (patches.astype(np.float64) - model.patch_mean_) @ model.whitening_.astype(np.float64)
    covariance = np.cov(whitened, rowvar=False)
    # Normalized patches sum to zero: whitening can only reach the identity on the other directions.
    along_ones = np.eye(27) - np.full((27, 27), 1 / 27)
    np.testing.assert_allclose(along_ones @ covariance @ along_ones, along_ones, atol=2e-3)


@pytest.mark.parametrize(("pooling", "n_regions"), [("global", 1), ("quadrants", 4), ((1, 2, 4), 21), ([3], 9)])
def test_width_is_words_times_regions(pooling, n_regions):
    images = _random_images(n=3, height=16, width=16)
    model = KMeansWords(n_words=3, patch_size=4, n_patches=100, pooling=pooling, random_state=0)
    assert model.n_features_out((16, 16)) == 3 * n_regions
    features = model.fit_transform(images)
    assert features.shape == (3, 3 * n_regions) == (3, model.n_features_out_)


def test_same_seed_same_words_and_features_whatever_the_threads():
    images = _random_images(n=9, height=10, width=10, seed=4)
    first = KMeansWords(n_words=6, patch_size=3, n_patches=500, random_state=7, n_threads=1).fit(images)
    second = KMeansWords(n_words=6, patch_size=3, n_patches=500, random_state=7, n_threads=3).fit(images)
    other = KMeansWords(n_words=6, patch_size=3, n_patches=500, random_state=8).fit(images)
    np.testing.assert_array_equal(first.words_, second.words_)
    assert not np.allclose(first.words_, other.words_)
    np.testing.assert_allclose(first.transform(images), second.transform(images), rtol=1e-6, atol=1e-6)


def test_hard_histograms_are_frequencies():
    images = _random_images(n=5, height=14, width=14, seed=5)
    model = KMeansWords(n_words=8, patch_size=5, n_patches=300, encoding="hard", pooling=(1, 2),
                        random_state=0).fit(images)
    histograms = model.transform(images).reshape(5, 5, 8)
    np.testing.assert_allclose(histograms.sum(axis=2), 1.0, rtol=1e-6)


@pytest.mark.parametrize("encoding", ["triangle", "hard"])
def test_power_raises_each_pooled_feature(encoding):
    images = _random_images(n=6, height=12, width=12, seed=6)
    model = KMeansWords(n_words=6, patch_size=4, n_patches=300, encoding=encoding, power=0.5,
                        random_state=0).fit(images)
    rooted = model.transform(images)
    plain = model.set_params(power=1.0).transform(images)
    assert plain.max() > 1.0 or encoding == "hard"
    np.testing.assert_allclose(rooted, np.sqrt(plain), rtol=1e-6)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"power": 0}, "power must be a positive number"),
        ({"encoding": "soft"}, "encoding must be one of"),
        ({"pooling": "halves"}, "pooling must be"),
        ({"pooling": (0, 2)}, "positive integers"),
        ({"pooling": ()}, "positive integers"),
        ({"pooling": (9,)}, "pyramid level 9 needs"),
        ({"n_patches": 3}, "n_patches .* at least n_words"),
        ({"n_words": 0}, "n_words must be a positive integer"),
        ({"stride": 1.5}, "stride must be a positive integer"),
        ({"whiten_eps": 0}, "whiten_eps must be a positive number"),
        ({"n_threads": 0}, "n_threads must be None or a positive integer"),
        ({"patch_size": 13}, "too small"),
    ],
)
def test_bad_parameters_raise_clear_errors(params, message):
    model = KMeansWords(**{"n_words": 4, "patch_size": 4, "n_patches": 100, **params})
    with pytest.raises(ValueError, match=message):
        model.fit(_random_images())


def test_bad_images_raise_clear_errors():
    model = KMeansWords(n_words=4, patch_size=4, n_patches=100, random_state=0)
    with pytest.raises(NotFittedError):
        model.transform(_random_images())
    with pytest.raises(ValueError, match=r"shape \(N, H, W, 3\)"):
        model.fit(np.zeros((5, 8), dtype=np.uint8))
    model.fit(_random_images())
    with pytest.raises(ValueError, match="fitted on 12x11"):
        model.transform(_random_images(height=10))


def test_word_patches_undo_the_whitening():
    images = _random_images(n=8, height=10, width=10, seed=6)
    model = KMeansWords(n_words=5, patch_size=3, n_patches=400, random_state=0).fit(images)
    patches = model.word_patches()
    assert patches.shape == (5, 3, 3, 3)
    rewhitened = (patches.reshape(5, -1) - model.patch_mean_) @ model.whitening_
    np.testing.assert_allclose(rewhitened, model.words_, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="not fitted"):
        KMeansWords().word_patches()


def test_montage_places_each_rescaled_patch_on_its_grid_cell():
    patches = np.random.default_rng(0).normal(size=(5, 2, 3, 3))
    montage = word_montage(patches, gap=1)
    assert montage.shape == (2 * 3 + 1, 3 * 4 + 1, 3)
    for index, patch in enumerate(patches):
        top, left = 1 + (index // 3) * 3, 1 + (index % 3) * 4
        expected = (patch - patch.min()) / (patch.max() - patch.min())
        np.testing.assert_allclose(montage[top:top + 2, left:left + 3], expected, rtol=1e-6)
    np.testing.assert_array_equal(montage[4:6, 9:12], 1.0)
    with pytest.raises(ValueError, match=r"\(n_words, p, p, 3\)"):
        word_montage(np.zeros((4, 6, 6)))


def test_plot_words_draws_the_fitted_words_into_given_axes():
    import matplotlib.pyplot as plt

    model = KMeansWords(n_words=10, patch_size=3, n_patches=300, random_state=0).fit(_random_images())
    figure, ax = plt.subplots()
    returned = plot_words(model, ax=ax)
    assert returned is ax
    np.testing.assert_allclose(ax.get_images()[0].get_array(), word_montage(model.word_patches()))
    plt.close(figure)




@pytest.mark.cifar
def test_triangle_words_beat_raw_pixels_on_acifar_subset():
    X_train, y_train = cifar_subset("train", 100, seed=0)
    X_test, y_test = cifar_subset("test", 50, seed=1)
    words = KMeansWords(n_words=100, n_patches=20_000, random_state=0).fit(X_train)

    words_accuracy = ridge_accuracy(words.transform(X_train), y_train, words.transform(X_test), y_test)
    raw_accuracy = ridge_accuracy(X_train.reshape(len(X_train), -1).astype(np.float32), y_train,
                                  X_test.reshape(len(X_test), -1).astype(np.float32), y_test)
    # Measured: 0.49 here, raw pixels 0.32, random words 0.43, no whitening 0.39.
    assert words_accuracy > 0.45
    assert words_accuracy > raw_accuracy + 0.1
