"""gunicorn settings for ``gunicorn -c serving/gunicorn.conf.py "serving:create_app()"``.

Known hangs avoided (../shared/notes/runtime-facts.md): the master never imports torch or opens
a Chroma client (no preload_app; each worker opens the model itself after the fork, from the
folder a subprocess prepared once per host), and each
worker's torch uses one thread unless RAG_TORCH_THREADS says otherwise. SIGTERM lets in-flight
requests finish for up to ``graceful_timeout`` and refuses new connections at once (every
worker closes its copy of the listening socket).
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile

from rag_model.offline import apply_offline_defaults
from serving import gunicorn_errors as _gunicorn_errors
from serving.settings import Settings

# in the master, before the fork: every worker starts with them already set
apply_offline_defaults()
_settings = Settings.from_env()

# read by torch when a worker first imports it; the master never does
os.environ.setdefault("OMP_NUM_THREADS", str(_settings.torch_threads))
os.environ.setdefault("MKL_NUM_THREADS", str(_settings.torch_threads))
# A worker's only MLflow client is its watcher, which retries an unreachable registry itself
# with a capped backoff shown in /ready. MLflow's own defaults (7 retries, backoff factor 2,
# 120 s timeout) would hold each failed alias check for about four minutes; these make one
# fail in a few seconds and still ride out a blip while a new version downloads.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
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
logger_class = "serving.gunicorn_logger.RedactingLogger"  # no client-sent text in the log
# requests gunicorn refuses before the app (request line or headers too large) get the
# app's JSON error shape, not gunicorn's HTML page
_gunicorn_errors.install()


_prepare = None  # the `python -m serving.prepare` subprocess


def on_starting(server):  # noqa: ANN001, D103 - gunicorn hook
    # samples of a previous run in a reused folder would be summed into this one's
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)
    # The version is resolved, downloaded and verified once per host by a subprocess (MLflow
    # is imported there, never in this master), while the workers import the rest; each
    # worker then opens it without MLflow (serving/prepare.py). Started before any fork.
    global _prepare
    result = os.path.join(tempfile.mkdtemp(prefix="rag-model-prepared-"), "version.json")
    os.environ["RAG_PREPARED_FILE"] = result
    # -c rather than -m: `serving` itself imports serving.prepare (runpy would warn)
    command = "import sys; from serving.prepare import main; sys.exit(main(sys.argv))"
    _prepare = subprocess.Popen([sys.executable, "-c", command, _settings.model_uri, result])


def on_exit(server):  # noqa: ANN001, D103 - gunicorn hook
    if _prepare is not None and _prepare.poll() is None:
        _prepare.kill()
    if _prepare is not None:
        _prepare.wait()
        shutil.rmtree(os.path.dirname(os.environ["RAG_PREPARED_FILE"]), ignore_errors=True)


def post_worker_init(worker):  # noqa: ANN001, D103 - gunicorn hook
    _close_listeners_on_sigterm(worker)
    # A worker accepts connections only after its first load attempt ended: while one worker
    # still loads, the kernel hands new connections to the workers that are serving, so a
    # rolling start or a replaced worker never answers 503 "not ready" next to a ready one.
    holder = worker.wsgi.extensions.get("rag_model")
    if holder is None:
        return
    while not holder.attempted():
        worker.notify()
        holder.wait(timeout=1.0)  # the master kills a worker silent for ``timeout`` seconds


def _close_listeners_on_sigterm(worker):  # noqa: ANN001, ANN202
    # On SIGTERM the master closes its copy of the listening socket, but a worker finishing
    # an in-flight request still holds its own: the socket keeps listening, and the kernel
    # queues new connections that nobody will accept (clients hang until the worker exits).
    # Each worker closes its copy too, so once all have, new connections are refused at once.
    # Closing is per process: a worker stopped alone (TTOU, max_requests) leaves the others'.
    gunicorn_handler = signal.getsignal(signal.SIGTERM)

    def handle_sigterm(signum, frame):  # noqa: ANN001, ANN202
        for listener in worker.sockets:
            listener.close()
        gunicorn_handler(signum, frame)

    signal.signal(signal.SIGTERM, handle_sigterm)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn set it: no EINTR mid-request


def child_exit(server, worker):  # noqa: ANN001, D103 - gunicorn hook
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
