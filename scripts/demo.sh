#!/usr/bin/env bash
# The main job end to end on the sample corpus: build + evaluate + register (mlflow run main),
# promote to @production, serve with gunicorn, ask one question, print the answer, stop.
set -euo pipefail
cd "$(dirname "$0")/.."
source .venv/bin/activate

export MLFLOW_TRACKING_URI="${MLFLOW_TRACKING_URI:-sqlite:///$PWD/mlflow.db}"
export RAG_MODEL_NAME="${RAG_MODEL_NAME:-rag-model}"
PORT="${RAG_DEMO_PORT:-8000}"
QUESTION="${RAG_DEMO_QUESTION:-Who was the duke in the battle of Hastings?}"

echo "== 1/4 mlflow run main: build the Chroma snapshot, log, evaluate (report), register as @candidate"
mlflow run . -e main --env-manager local --experiment-name rag-model \
  -P model_name="$RAG_MODEL_NAME"

echo "== 2/4 promote @candidate to @production; index the evaluation reports of every version"
mlflow run . -e promote --env-manager local --experiment-name rag-model \
  -P model_name="$RAG_MODEL_NAME"
rag-model report --model-name "$RAG_MODEL_NAME"

echo "== 3/4 serve models:/$RAG_MODEL_NAME@production with gunicorn on port $PORT"
export RAG_MODEL_URI="models:/$RAG_MODEL_NAME@production" RAG_BIND="127.0.0.1:$PORT"
gunicorn -c serving/gunicorn.conf.py "serving:create_app()" > .rag-model-demo-server.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  if curl -fs "http://127.0.0.1:$PORT/ready" > /dev/null; then break; fi
  if ! kill -0 $SERVER 2>/dev/null; then cat .rag-model-demo-server.log; exit 1; fi
  sleep 1
done
curl -fs "http://127.0.0.1:$PORT/ready" > /dev/null || {
  echo "server not ready after 120 s"; tail -50 .rag-model-demo-server.log; exit 1; }

echo "== 4/4 query the served production version"
rag-model query "$QUESTION" --url "http://127.0.0.1:$PORT"
