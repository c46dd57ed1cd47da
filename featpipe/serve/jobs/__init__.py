"""Jobs over HTTP: extraction and training submitted to ``featpipe serve``, durable across restarts.

Modules, one idea each: ``paths`` (the roots and the confinement of request
paths), ``job_store`` (the SQLite job records), ``submission`` (request
models and their checks), ``runner`` (worker processes started, watched,
cancelled and stopped from one thread of the server), ``worker`` (the
process that runs one job) and ``router`` (the ``/v1/jobs`` endpoints).
"""
