"""Micro-batching, admission and readiness: batches form, nothing wedges them, overload is 503."""

import asyncio
import gc
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

from featpipe.serve.app import create_app
from featpipe.serve.batcher import MicroBatcher
from featpipe.serve.limits import Limits
from featpipe.serve.models import load_served_model, parse_model_sources
from featpipe.serve.problems import Problem
from serve_support import make_service, metric_value, run_async, running_client

PREDICT = "/v1/models/raw+svm/predict"


def _raw(client, path):
    return client.post(PREDICT, content=path.read_bytes(), headers={"Content-Type": "image/png"})


def test_concurrent_requests_share_batches_and_the_histogram_shows_it(runs, image_files):
    limits = Limits(max_wait_ms=200, max_batch=64)

    async def scenario():
        service = make_service([runs["raw+svm"]], limits=limits, n_workers=1)
        async with running_client(service) as client:
            before = (await client.get("/metrics")).text
            answers = await asyncio.gather(*[_raw(client, image_files[i % 6]) for i in range(24)])
            after = (await client.get("/metrics")).text
        return before, answers, after

    before, answers, after = run_async(scenario)
    assert [a.status_code for a in answers] == [200] * 24
    count = metric_value(after, "featpipe_batch_size_images_count", model="raw+svm") - \
        metric_value(before, "featpipe_batch_size_images_count", model="raw+svm")
    total = metric_value(after, "featpipe_batch_size_images_sum", model="raw+svm") - \
        metric_value(before, "featpipe_batch_size_images_sum", model="raw+svm")
    assert total == 24
    assert count <= 4, f"24 concurrent images took {count} model calls"
    assert metric_value(after, "featpipe_images_processed_total", model="raw+svm") >= 24
    labels = {a.json()["predictions"][0]["label"] for a in answers[:6]}
    assert labels == {a.json()["predictions"][0]["label"] for a in answers[6:12]}


def _blocking(served):
    """Make the model wait for an event before each batch; return (event, calls seen)."""
    release = threading.Event()
    calls = []
    original = served.predict_batch

    def blocked(images):
        calls.append(len(images))
        release.wait(10)
        return original(images)

    served.predict_batch = blocked
    return release, calls


def test_a_cancelled_request_cannot_wedge_the_batcher(runs, image_files):
    async def scenario():
        service = make_service([runs["raw+svm"]], limits=Limits(max_wait_ms=0), n_workers=1)
        async with running_client(service) as client:
            release, calls = _blocking(service.registry.get("raw+svm"))
            first = asyncio.create_task(_raw(client, image_files[1]))
            while not calls:
                await asyncio.sleep(0.01)
            abandoned = asyncio.create_task(_raw(client, image_files[2]))
            await asyncio.sleep(0.1)
            abandoned.cancel()
            release.set()
            survivor = await asyncio.wait_for(_raw(client, image_files[3]), timeout=10)
            first_answer = await asyncio.wait_for(first, timeout=10)
            metrics = (await client.get("/metrics")).text
        return first_answer, survivor, abandoned, metrics, calls

    first_answer, survivor, abandoned, metrics, calls = run_async(scenario)
    assert abandoned.cancelled()
    assert first_answer.status_code == 200 and survivor.status_code == 200
    assert metric_value(metrics, "featpipe_rejections_total", reason="cancelled") == 1
    assert sum(calls) == 2, "the cancelled request's image was computed"


def test_a_failing_request_does_not_fail_its_neighbours(runs, image_files):
    async def scenario():
        service = make_service([runs["raw+svm"]], limits=Limits(max_wait_ms=300), n_workers=1)
        served = service.registry.get("raw+svm")
        original = served.predict_batch
        poison = np.asarray(Image.open(image_files[3]).convert("RGB"))

        def fails_on_poison(images):
            if any(np.array_equal(image, poison) for image in images):
                raise RuntimeError("poisoned batch")
            return original(images)

        served.predict_batch = fails_on_poison
        async with running_client(service) as client:
            return await asyncio.gather(*[_raw(client, image_files[i]) for i in (1, 3, 5)])

    good, poisoned, other = run_async(scenario)
    assert good.status_code == 200 and other.status_code == 200
    assert poisoned.status_code == 500 and "poisoned" not in poisoned.text


def test_a_full_queue_is_503_with_retry_after_and_a_late_request_503(runs, image_files):
    async def scenario():
        service = make_service([runs["raw+svm"]], limits=Limits(queue_size=1, request_timeout_ms=300, max_wait_ms=0))
        async with running_client(service) as client:
            release, calls = _blocking(service.registry.get("raw+svm"))
            held = asyncio.create_task(_raw(client, image_files[1]))
            while not calls:
                await asyncio.sleep(0.01)
            refused = await _raw(client, image_files[2])
            late = await held
            release.set()
            metrics = (await client.get("/metrics")).text
        return refused, late, metrics

    refused, late, metrics = run_async(scenario)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "queue is full" in refused.json()["error"]
    assert late.status_code == 503 and "deadline" in late.json()["error"]
    assert metric_value(metrics, "featpipe_rejections_total", reason="queue_full") == 1


def test_a_slow_upload_times_out_with_408(runs, image_files):
    async def slow_body():
        yield image_files[1].read_bytes()[:100]
        await asyncio.sleep(1)
        yield image_files[1].read_bytes()[100:]

    async def scenario():
        service = make_service([runs["raw+svm"]], limits=Limits(request_timeout_ms=200))
        async with running_client(service) as client:
            return await client.post(PREDICT, content=slow_body(), headers={"Content-Type": "image/jpeg"})

    started = time.monotonic()
    response = run_async(scenario)
    assert response.status_code == 408 and time.monotonic() - started < 5


def test_readyz_is_503_until_the_models_are_warm_and_while_draining(runs):
    async def scenario():
        service = make_service([runs["raw+svm"]])
        served = service.registry.get("raw+svm")
        release = threading.Event()
        original = served.warm_up
        served.warm_up = lambda n: (release.wait(10), original(n))
        app = create_app(service)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
                loading = await client.get("/readyz")
                v2_loading = await client.get("/v2/models/raw+svm/ready")
                release.set()
                for _ in range(500):
                    if (await client.get("/readyz")).status_code == 200:
                        break
                    await asyncio.sleep(0.01)
                ready = await client.get("/readyz")
                service.registry.draining = True
                draining = await client.get("/readyz")
                refused = await client.post(PREDICT, content=b"x", headers={"Content-Type": "image/png"})
                alive = await client.get("/healthz")
        return loading, v2_loading, ready, draining, refused, alive

    loading, v2_loading, ready, draining, refused, alive = run_async(scenario)
    assert loading.status_code == 503 and "loading" in loading.json()["error"]
    assert v2_loading.status_code == 503
    assert ready.status_code == 200
    assert draining.status_code == 503 and "shutting down" in draining.json()["error"]
    assert refused.status_code == 503 and alive.status_code == 200


def test_batcher_splits_answers_and_drops_expired_requests():
    async def scenario():
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(lambda x: (x * 2, x.sum(axis=1)), max_batch=8, max_wait_ms=50, executor=pool)
            batcher.start()
            now = time.monotonic()
            answers = await asyncio.gather(
                batcher.submit(np.arange(6).reshape(3, 2), now + 5),
                batcher.submit(np.arange(4).reshape(2, 2) + 100, now + 5),
            )
            with pytest.raises(Problem) as expired:
                await batcher.submit(np.zeros((1, 2)), time.monotonic() - 1)
            await batcher.stop()
        return answers, expired.value

    (first, second), expired = run_async(scenario)
    np.testing.assert_array_equal(first[0], np.arange(6).reshape(3, 2) * 2)
    np.testing.assert_array_equal(second[1], (np.arange(4).reshape(2, 2) + 100).sum(axis=1))
    assert expired.status == 503


def test_a_lone_request_does_not_wait_for_company(runs, image_files):
    async def scenario():
        service = make_service([runs["raw+svm"]], limits=Limits(max_wait_ms=3000))
        async with running_client(service) as client:
            started = time.monotonic()
            answers = [await _raw(client, image_files[1]) for _ in range(3)]
            seconds = time.monotonic() - started
        return answers, seconds, service.arriving()

    answers, seconds, arriving = run_async(scenario)
    assert [a.status_code for a in answers] == [200] * 3
    assert seconds < 3, f"three lone requests took {seconds:.1f} s: each waited for a batch that could not fill"
    assert arriving == 0


def test_warming_freezes_the_model_out_of_the_garbage_collectors_walks(runs):
    served = load_served_model(parse_model_sources([str(runs["raw+svm"])])[0])
    tracked = {id(item) for item in gc.get_objects()}
    assert id(served.model) in tracked and id(served.model[-1]) in tracked
    served.warm_up(4)
    walked = {id(item) for item in gc.get_objects()}
    assert served.warm.is_set()
    assert id(served.model) not in walked and id(served.model[-1]) not in walked
