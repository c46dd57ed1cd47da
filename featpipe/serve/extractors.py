"""Feature extractors served without a run: ``POST /v1/features/{spec}``.

Only extractors that learn nothing from data qualify (``raw``, ``color``,
``hog``; not the k-means ``words``, which a run must fit): ``fit`` on them
only records the image size, so a blank batch fits them exactly as
``featpipe extract`` would. Fitted extractors are kept per (spec, image
size), at most :data:`MAX_CACHED` of them.
"""

from collections import OrderedDict

import numpy as np
from sklearn.pipeline import FeatureUnion

from featpipe.features.base import ImageFeatureExtractor
from featpipe.pipeline.registry import make_feature
from featpipe.serve.problems import Problem
from featpipe.pipeline.spec import SpecError, parse_features

MAX_CACHED = 32
"""Fitted (spec, image size) extractors kept."""

MIN_IMAGE_SIZE = 1
MAX_IMAGE_SIZE = 512
"""Largest ``?image_size=``: 64 images of 512 x 512 x 3 bytes stay under 51 MB."""


def learns_from_data(extractor):
    """Whether ``fit`` learns anything beyond the image size (k-means words does)."""
    return type(extractor)._fit_images is not ImageFeatureExtractor._fit_images


class ExtractorCache:
    """Fitted, data-free extractors by (spec, image size), least recently used dropped first."""

    def __init__(self):
        self._fitted = OrderedDict()

    def get(self, spec, image_size):
        """A FeatureUnion of the spec's extractors fitted for ``image_size`` (404/422 when impossible)."""
        if not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
            raise Problem(422, f"image_size must lie in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}]; got {image_size}")
        key = (spec, image_size)
        if key in self._fitted:
            self._fitted.move_to_end(key)
            return self._fitted[key]
        try:
            steps = parse_features(spec)
        except SpecError as error:
            raise Problem(404, str(error), reason="unknown_features") from None
        pairs = [(step.name, make_feature(step.name)) for step in steps]
        learning = [name for name, extractor in pairs if learns_from_data(extractor)]
        if learning:
            raise Problem(404, f"{', '.join(learning)} must be fitted on data; serve a run that uses it "
                               "and POST to /v1/models/{name}/features", reason="unknown_features")
        union = FeatureUnion(pairs)
        try:
            union.fit(np.zeros((1, image_size, image_size, 3), dtype=np.uint8))
        except ValueError as error:
            raise Problem(422, str(error)) from None
        self._fitted[key] = union
        if len(self._fitted) > MAX_CACHED:
            self._fitted.popitem(last=False)
        return union
