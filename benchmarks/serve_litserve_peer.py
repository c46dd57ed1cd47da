"""The peer of bench_serve.py: the same model.skops served by LitServe with its own batching.

A few lines of ``LitAPI``: decode each upload with featpipe's decoder (the
one ``featpipe serve`` uses), predict a stacked batch with the run's
pipeline, encode label and scores. Run by bench_serve.py as
``python benchmarks/serve_litserve_peer.py RUN_DIR --port P --max-batch 64 --max-wait-ms 5``.

Configured as LitServe's documentation says for a CPU server (LitServer's
parameter reference): one inference worker process per core
(``workers_per_device``, "for CPU, set to the number of cores"), as many
API server processes as workers (``run``'s default), the ZeroMQ queue
(``fast_queue``, "for high-throughput scenarios (>100 RPS)"), and the same
request timeout as ``featpipe serve`` (30 s, LitServe's default too). Each
worker owns one core, so its BLAS runs one thread (threadpoolctl), as a
process per core should; featpipe serve computes its batches in threads of
one process instead.
"""

import argparse
import os

import litserve as ls
import numpy as np
from threadpoolctl import threadpool_limits

from featpipe.serve.limits import decode_upload
from featpipe.serve.models import load_served_model, parse_model_sources

FIELD = "images"
MAX_PIXELS = 40_000_000


class FeatpipeAPI(ls.LitAPI):
    """Decode, predict, encode: a run folder's model behind LitServe."""

    def __init__(self, run_dir, **options):
        super().__init__(**options)
        self.run_dir = run_dir

    def setup(self, device):
        threadpool_limits(limits=1)
        self.served = load_served_model(parse_model_sources([self.run_dir])[0])

    def decode_request(self, request):
        return decode_upload(request[FIELD].file.read(), self.served.image_size, MAX_PIXELS)

    def batch(self, inputs):
        return np.stack(inputs)

    def predict(self, images):
        labels, values = self.served.predict_batch(images)
        return list(zip(labels, values))

    def unbatch(self, output):
        return output

    def encode_response(self, output):
        label, values = output
        classes = self.served.classes
        return {"label": classes[int(label)], "class_index": int(label), "scores": dict(zip(classes, values.tolist()))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="inference worker processes (default: one per core)")
    parser.add_argument("--timeout-s", type=float, default=30.0, help="request timeout (featpipe serve's default)")
    args = parser.parse_args()
    api = FeatpipeAPI(args.run_dir, max_batch_size=args.max_batch, batch_timeout=args.max_wait_ms / 1000)
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=args.workers,
                          timeout=args.timeout_s, fast_queue=True)
    server.run(port=args.port, host="127.0.0.1", generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
