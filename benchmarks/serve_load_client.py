"""The load client of bench_serve.py and probe_serve_tail.py: aiohttp, in a process of its own.

- closed loop: ``concurrency`` clients, each sending its next request when
  the last one is answered (single images as raw bodies, or multipart forms);
- open loop: requests created at a fixed rate whatever the answers, over a
  pool of at most ``OPEN_LOOP_CONNECTIONS`` connections, each answer with its
  status, its latency from creation and its latency from when it had a
  connection (aiohttp's connection-queue trace events).

The client runs in its own process so that it shares no GIL with the
server or the benchmark, on uvloop by default (as the servers do).
"""

import asyncio
import multiprocessing
import time

import numpy as np

FORM_FIELD = "images"
"""Name of the multipart parts (featpipe serve's and the LitServe peer's)."""
CLIENT_RESULT_TIMEOUT_S = 600
"""Longest wait for a load client's figures (a client that dies must not hang the benchmark)."""
CLIENT_LOOP = "uvloop"
"""The load client's event loop: uvloop (as the servers use), so the client's own overhead weighs less in
the latencies it measures; "asyncio" for the standard loop."""
OPEN_LOOP_CONNECTIONS = 512
"""Connections the overload client keeps open at most (a client pool, as real callers have)."""


async def _closed_loop(url, bodies, concurrency, duration, form):
    import aiohttp

    latencies, statuses, images_done = [], {}, [0]
    stop_at = time.monotonic() + duration
    counter = [0]

    async def one_client(session):
        while time.monotonic() < stop_at:
            index = counter[0]
            counter[0] += 1
            batch = bodies[index % len(bodies)]
            if form:
                data = aiohttp.FormData()
                for number, image in enumerate(batch):
                    data.add_field(FORM_FIELD, image, filename=f"{number}.jpg", content_type="image/jpeg")
                kwargs = {"data": data}
            else:
                kwargs = {"data": batch[0], "headers": {"Content-Type": "image/jpeg"}}
            started = time.monotonic()
            try:
                async with session.post(url, **kwargs) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1
            except (asyncio.TimeoutError, aiohttp.ClientError) as error:
                statuses[type(error).__name__] = statuses.get(type(error).__name__, 0) + 1
                continue
            latencies.append(time.monotonic() - started)
            if response.status == 200:
                images_done[0] += len(batch)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        begun = time.monotonic()
        await asyncio.gather(*[one_client(session) for _ in range(concurrency)])
        elapsed = time.monotonic() - begun
    return latencies, statuses, images_done[0], elapsed


async def _open_loop(url, bodies, rate, duration, timeout):
    """Offer ``rate`` requests/s; per answer: status, latency, and how long it waited for a pooled connection."""
    import aiohttp

    answers = []
    sent = [0]
    unanswered = [0]

    async def queued_start(session, context, params):
        context.trace_request_ctx["queued"] = time.monotonic()

    async def queued_end(session, context, params):
        context.trace_request_ctx["pool_wait"] = time.monotonic() - context.trace_request_ctx["queued"]

    tracing = aiohttp.TraceConfig()
    tracing.on_connection_queued_start.append(queued_start)
    tracing.on_connection_queued_end.append(queued_end)

    async def one_request(session, body):
        started = time.monotonic()
        trace = {}
        try:
            async with session.post(url, data=body, headers={"Content-Type": "image/jpeg"},
                                    timeout=aiohttp.ClientTimeout(total=timeout), trace_request_ctx=trace) as response:
                await response.read()
                latency = time.monotonic() - started
                answers.append((response.status, latency, latency - trace.get("pool_wait", 0.0)))
        except asyncio.TimeoutError:
            unanswered[0] += 1
        except aiohttp.ClientError as error:
            latency = time.monotonic() - started
            answers.append((type(error).__name__, latency, latency - trace.get("pool_wait", 0.0)))

    connector = aiohttp.TCPConnector(limit=OPEN_LOOP_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector, trace_configs=[tracing]) as session:
        tasks = []
        begun = time.monotonic()
        while time.monotonic() - begun < duration:
            due = begun + sent[0] / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one_request(session, bodies[sent[0] % len(bodies)][0])))
            sent[0] += 1
        await asyncio.gather(*tasks)
    return answers, sent[0], unanswered[0]


def _client_process(kind, arguments, results, loop):
    """The client process's body: run one loop and hand its figures back."""
    loop_function = _closed_loop if kind == "closed" else _open_loop
    runner = asyncio.run
    if loop == "uvloop":
        import uvloop

        runner = uvloop.run
    results.put(runner(loop_function(*arguments)))


def run_client(kind, *arguments, loop=CLIENT_LOOP):
    """Run the load client in its own process (it must not share the server's or this process's GIL)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_client_process, args=(kind, arguments, results, loop))
    process.start()
    answer = results.get(timeout=CLIENT_RESULT_TIMEOUT_S)
    process.join()
    return answer


def latency_figures(latencies):
    """p50, p95 and p99 in milliseconds of latencies in seconds ({} when there are none)."""
    values = np.asarray(latencies) * 1000
    return {f"p{q}_ms": round(float(np.percentile(values, q)), 2) for q in (50, 95, 99)} if len(values) else {}
