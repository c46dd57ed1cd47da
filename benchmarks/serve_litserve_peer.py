"""The peer of bench_serve.py: the same model.skops served by LitServe with its own batching.

A few lines of ``LitAPI``: decode each upload with featpipe's decoder (the
one ``featpipe serve`` uses), predict a stacked batch with the run's
pipeline, encode label and scores. Run by bench_serve.py as
``python benchmarks/serve_litserve_peer.py RUN_DIR --port P --max-batch 64 --max-wait-ms 5``.
"""

import argparse

import litserve as ls
import numpy as np

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
    args = parser.parse_args()
    api = FeatpipeAPI(args.run_dir, max_batch_size=args.max_batch, batch_timeout=args.max_wait_ms / 1000)
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1)
    server.run(port=args.port, host="127.0.0.1", generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
