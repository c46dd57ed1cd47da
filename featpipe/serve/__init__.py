"""``featpipe serve``: trained pipelines and feature extraction as an HTTP service.

Modules, one idea each: ``server`` (the command: load, bind, drain),
``app`` (the FastAPI app and the envelope around every request),
``routes`` (health, metrics, ``/v1``), ``kserve`` and ``v2_codec`` (the
KServe V2 subset), ``page`` (the page at ``/``), ``service`` (state and the
steps of a request), ``batcher`` (micro-batching), ``limits``, ``uploads``,
``auth``, ``metrics``, ``models``, ``extractors``, ``schemas``,
``problems`` (error answers). Needs the ``serve`` extra
(``pip install -e ".[serve]"``).
"""
