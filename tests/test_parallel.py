"""Chunked parallel extraction: the same rows whatever the number of processes."""

import numpy as np

from featpipe import parallel
from featpipe.features.raw import RawPixels


def test_parallel_extraction_equals_serial():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(37, 16, 16, 3), dtype=np.uint8)
    extractor = RawPixels().fit(images)
    serial = parallel.transform_in_chunks(extractor, images, n_jobs=1, chunk_size=5)
    both_cores = parallel.transform_in_chunks(extractor, images, n_jobs=2, chunk_size=5)
    np.testing.assert_array_equal(serial, both_cores)
    np.testing.assert_array_equal(serial, extractor.transform(images))
