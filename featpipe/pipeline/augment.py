"""Training-set augmentation: more training images made from the ones there are.

``augment = ["hflip"]`` in a pipeline file appends the horizontal mirror of
every training image (with its label) before features are extracted, so
the head trains on twice the images. A mirrored cat is still a cat in
every CIFAR-10 class; validation and test images are never augmented.
Extractors are fitted on the original training images only.
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
