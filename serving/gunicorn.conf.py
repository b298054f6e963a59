"""gunicorn settings for ``gunicorn -c serving/gunicorn.conf.py "serving:create_app()"``.

Known hangs avoided (../shared/notes/runtime-facts.md): the master never imports torch or opens
a Chroma client (no preload_app; each worker loads the model itself after the fork), and each
worker's torch uses one thread unless RAG_TORCH_THREADS says otherwise.
"""

import os

from serving.settings import Settings

_settings = Settings.from_env()

# read by torch when a worker first imports it; the master never does
os.environ.setdefault("OMP_NUM_THREADS", str(_settings.torch_threads))
os.environ.setdefault("MKL_NUM_THREADS", str(_settings.torch_threads))

bind = _settings.bind
workers = _settings.workers
worker_class = "sync"
timeout = _settings.timeout
graceful_timeout = 30
preload_app = False  # a Chroma client or torch threads in the master hang the workers
accesslog = "-"
errorlog = "-"
