"""The execution service: ``cellbox serve`` (HTTP, FastAPI) and ``cellbox worker`` (Celery).

Layers, top down: ``app`` (routes shared by both APIs, auth, errors, metrics), ``native`` and
``judge0`` (the two APIs' models and conversions), ``backends`` (where jobs run: an embedded
process pool or Celery with Redis), ``jobs`` (a job and its result as plain JSON values, and
``execute``, which runs one in a worker process through ``cellbox.judge``).

Runs never happen in the server process: it has threads, and cellbox forks only from
single-threaded processes (DESIGN.md, "Fork safety").
"""
