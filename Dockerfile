# The rag-model REST server. Build: docker build -t rag-model .
# Run: docker run -p 8000:8000 -e MLFLOW_TRACKING_URI=... -e RAG_MODEL_URI=models:/rag-model@production rag-model
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RAG_BIND=0.0.0.0:8000

WORKDIR /app

# only what serving needs: the core (packaging, Chroma, the onnx encoder) and the serve extra;
# no torch, pyspark or ragas (a torch-backend version needs an image with the torch extra too).
# The lock pins every version to the set the tests ran with.
COPY requirements-lock.txt pyproject.toml README.md ./
COPY rag_model ./rag_model
COPY serving ./serving
COPY evaluation ./evaluation
COPY experiments ./experiments
RUN pip install -c requirements-lock.txt ".[serve]" \
    && useradd --create-home --uid 10001 rag
USER rag

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready')"

# the same command the tests start
CMD ["gunicorn", "-c", "serving/gunicorn.conf.py", "serving:create_app()"]
