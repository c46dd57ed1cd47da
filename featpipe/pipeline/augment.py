"""Training-set augmentation: more training images made from the ones there are.

``augment = ["hflip"]`` in a pipeline file appends the horizontal mirror of
every training image (with its label) before features are extracted, so
the head trains on twice the images. A mirrored cat is still a cat in
every CIFAR-10 class; validation and test images are never augmented.
Extractors are fitted on the original training images only.

An extractor whose features of a mirrored image are a fixed permutation of
the image's own (it has a ``mirror_permutation`` method, like
:class:`featpipe.features.patches.SoftThresholdPatches`) gets its mirrored
rows by that permutation instead of a second extraction
(:func:`mirror_permutation_for`, :func:`append_permuted_rows`).
"""

import dataclasses

from featpipe.errors import SpecError

AUGMENTATIONS = ("hflip",)
"""Names accepted in a pipeline's ``augment`` list."""


def check_augmentations(names):
    """The names as a tuple, or a SpecError naming the unknown one."""
    names = tuple(names)
    for name in names:
        if name not in AUGMENTATIONS:
            raise SpecError(f"unknown augmentation {name!r}; valid: {', '.join(AUGMENTATIONS)}")
    if len(set(names)) != len(names):
        raise SpecError(f"augmentations {list(names)} name one twice")
    return names


def augment_training_set(dataset, names):
    """``dataset`` with the augmented copies of its training images appended.

    Parameters
    ----------
    dataset : featpipe.datasets.Dataset
    names : sequence of str
        Augmentations from :data:`AUGMENTATIONS`; empty returns ``dataset``.

    Returns
    -------
    Dataset
        The same validation and test splits; ``X_train`` and ``y_train``
        hold the original images first, then each augmentation's copies in
        the order of ``names``.
    """
    import numpy as np  # here, not at the top: a spec check imports this module and must stay light

    names = check_augmentations(names)
    if not names:
        return dataset
    images, labels = [dataset.X_train], [dataset.y_train]
    for name in names:
        if name == "hflip":
            images.append(dataset.X_train[:, :, ::-1])
            labels.append(dataset.y_train)
    return dataclasses.replace(dataset, X_train=np.concatenate(images), y_train=np.concatenate(labels))


def mirror_permutation_for(extractor, names):
    """The column permutation that gives the augmented rows of ``extractor``, or None.

    Parameters
    ----------
    extractor : fitted feature extractor
    names : sequence of str
        The augmentations, as in :func:`augment_training_set`.

    Returns
    -------
    ndarray of intp or None
        ``extractor.mirror_permutation()`` when the augmentation is exactly
        ``["hflip"]`` and the extractor has that method (features of the
        mirrored images are then ``features[:, permutation]``); ``None``
        when the augmented images must be extracted (also when the method
        returns ``None``).
    """
    import numpy as np  # here, not at the top, as in augment_training_set

    if check_augmentations(names) != ("hflip",) or not hasattr(extractor, "mirror_permutation"):
        return None
    permutation = extractor.mirror_permutation()
    return None if permutation is None else np.asarray(permutation, dtype=np.intp)


def append_permuted_rows(features, permutation, rows_per_block=4096):
    """``[features; features[:, permutation]]`` as one new array, in the order :func:`augment_training_set` uses.

    The permuted half is written block of rows by block, so the only large
    allocation is the result.
    """
    import numpy as np  # here, not at the top, as in augment_training_set

    n_rows = len(features)
    result = np.empty((2 * n_rows, features.shape[1]), dtype=features.dtype)
    result[:n_rows] = features
    for start in range(0, n_rows, rows_per_block):
        stop = min(start + rows_per_block, n_rows)
        np.take(features[start:stop], permutation, axis=1, out=result[n_rows + start:n_rows + stop])
    return result
