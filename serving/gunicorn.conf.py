"""gunicorn settings for ``gunicorn -c serving/gunicorn.conf.py "serving:create_app()"``.

Known hangs avoided (../shared/notes/runtime-facts.md): the master never imports torch or opens
a Chroma client (no preload_app; each worker loads the model itself after the fork), and each
worker's torch uses one thread unless RAG_TORCH_THREADS says otherwise. SIGTERM stops
accepting connections and lets in-flight requests finish for up to ``graceful_timeout``.
"""

import os
import shutil
import tempfile

from serving.settings import Settings

_settings = Settings.from_env()

# read by torch when a worker first imports it; the master never does
os.environ.setdefault("OMP_NUM_THREADS", str(_settings.torch_threads))
os.environ.setdefault("MKL_NUM_THREADS", str(_settings.torch_threads))
# every worker writes its metrics here; /metrics in any worker aggregates them all
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="rag-model-metrics-")

bind = _settings.bind
workers = _settings.workers
threads = _settings.threads
worker_class = "gthread" if _settings.threads > 1 else "sync"
timeout = _settings.timeout
keepalive = _settings.keepalive
graceful_timeout = _settings.graceful_timeout
preload_app = False  # a Chroma client or torch threads in the master hang the workers
accesslog = None  # serving.observability writes one JSON line per request instead
errorlog = "-"


def on_starting(server):  # noqa: ANN001, D103 - gunicorn hook
    # samples of a previous run in a reused folder would be summed into this one's
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)


def post_worker_init(worker):  # noqa: ANN001, D103 - gunicorn hook
    # A worker accepts connections only after its first load attempt ended: while one worker
    # still loads, the kernel hands new connections to the workers that are serving, so a
    # rolling start or a replaced worker never answers 503 "not ready" next to a ready one.
    holder = worker.wsgi.extensions.get("rag_model")
    if holder is None:
        return
    while not holder.attempted():
        worker.notify()
        holder.wait(timeout=1.0)  # the master kills a worker silent for ``timeout`` seconds


def child_exit(server, worker):  # noqa: ANN001, D103 - gunicorn hook
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
