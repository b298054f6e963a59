"""Smoke test of one install: what the core or one extra alone must be able to do.

``scripts/check_extras.sh`` runs it inside a fresh venv that holds the core plus that one extra
(``python scripts/extras_smoke.py serve --work DIR``), so an import that the extra needs but does
not declare fails here, not in a user's install. Each check also proves what must stay out:
serving a version never imports torch, and no extra pulls in another's heavy stack.

The ``torch`` check registers an onnx-backend version of a tiny corpus under ``DIR``; the
``core``, ``serve`` and ``spark`` checks then load that one (a real MiniLM model, served without
torch). Run alone, they register a hash-embedder version instead.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# the checks run offline, as CI does; telemetry lookups would stall or fail there
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODEL_NAME = "rag-model"
ONNX_STORE = "onnx-registry"  # written by the torch check, read by the others
# what each install must not contain: the serving image in particular must stay small
HEAVY = ("torch", "sentence_transformers", "transformers", "pyspark", "ragas", "llama_index")
QUESTION = "When did the Normans conquer England?"
DOCUMENTS = {
    "normans.txt": "The Normans conquered England in 1066 at the Battle of Hastings. "
    "William the Conqueror was crowned king of England that Christmas.",
    "oxygen.md": "# Oxygen\n\nOxygen is a chemical element with symbol O and atomic number 8. "
    "It is the most abundant element in the Earth's crust.",
    "steam.html": "<html><body><h1>Steam engine</h1><p>A steam engine is a heat engine that "
    "performs mechanical work using steam as its working fluid.</p></body></html>",
}


def check(condition: bool, message: str) -> None:
    """Fail the smoke test with ``message`` (asserts vanish under ``python -O``)."""
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def not_installed(*modules: str) -> None:
    """Each module must be absent from the venv, not merely unimported."""
    present = [name for name in modules if importlib.util.find_spec(name) is not None]
    check(not present, f"this install should not contain {present}")


def not_imported(*modules: str) -> None:
    """None of ``modules`` was imported by what ran so far."""
    loaded = [name for name in modules if name in sys.modules]
    check(not loaded, f"{loaded} imported, and this path must not import them")


def installed_copy() -> None:
    """The checks must exercise the installed package, not the checkout's sources."""
    import rag_model

    source = Path(__file__).resolve().parents[1]
    check(
        source not in Path(rag_model.__file__).resolve().parents,
        f"rag_model imported from the checkout ({rag_model.__file__}), not from the venv",
    )


def write_documents(folder: Path) -> Path:
    """Three small documents, one per reader (text, Markdown, HTML)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in DOCUMENTS.items():
        (folder / name).write_text(text)
    return folder


def use_store(root: Path) -> str:
    """Point MLflow at a SQLite tracking + registry store under ``root``, artifacts beside it."""
    import mlflow

    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient(uri)
    existing = client.get_experiment_by_name("extras")
    experiment = (
        existing.experiment_id
        if existing
        else client.create_experiment("extras", artifact_location=(root / "artifacts").as_uri())
    )
    mlflow.set_experiment(experiment_id=experiment)
    return uri


def register(config_dict: dict, root: Path) -> str:
    """Build the documents with ``config_dict``, log, register, and point @production at it."""
    import mlflow

    from rag_model.build import build_snapshot
    from rag_model.config import RagConfig
    from rag_model.packaging.log import log_rag_model
    from rag_model.packaging.registry import PRODUCTION, register_version, set_alias

    config = RagConfig.from_dict(config_dict)
    built = build_snapshot(config, write_documents(root / "docs"), root / "snapshot")
    use_store(root)
    with mlflow.start_run():
        info = log_rag_model(config, built.snapshot_dir)
    ref = register_version(info.model_uri, MODEL_NAME)
    set_alias(MODEL_NAME, PRODUCTION, ref.version)
    return f"models:/{MODEL_NAME}@{PRODUCTION}"


def production_model(work: Path, extra: str) -> str:
    """The torch check's onnx version if it ran, else a hash-embedder version made here."""
    if (work / ONNX_STORE / "mlflow.db").is_file():
        use_store(work / ONNX_STORE)
        print(f"{extra}: using the onnx-backend version the torch check registered")
        return f"models:/{MODEL_NAME}@production"
    print(f"{extra}: no onnx version under {work}; registering a hash-embedder version")
    return register({"embedding": {"model": "hash-embedder"}}, work / f"{extra}-registry")


def answer_of(prediction: object) -> str:
    """The answer text of the first row of a pyfunc prediction."""
    rows = prediction.to_dict("records") if hasattr(prediction, "to_dict") else prediction
    return rows[0]["answer"]


def smoke_core(work: Path) -> None:
    """Build, answer in process, log, register, load from the registry and answer again."""
    import rag_model

    installed_copy()
    not_imported("mlflow", "flask", "torch")
    not_installed(*HEAVY, "flask", "gunicorn", "matplotlib")
    import pandas as pd
    import pypdf  # noqa: F401 - the PDF reader imports it lazily; it must be installed

    from rag_model.build import build_snapshot
    from rag_model.config import RagConfig
    from rag_model.embedders import make_embedder
    from rag_model.errors import EmbedderError

    # hybrid retrieval (bm25s + PyStemmer), recursive chunking, extractive answers
    config = RagConfig.from_dict({"embedding": {"model": "hash-embedder"}})
    built = build_snapshot(config, write_documents(work / "core" / "docs"), work / "core" / "snap")
    answer = rag_model.RagPipeline.from_snapshot(config, built.snapshot_dir).answer(QUESTION)
    check("1066" in answer.answer, f"in-process answer {answer.answer!r} lacks '1066'")

    # the torch backend is an extra: it must say how to get it, not fail with an ImportError
    try:
        make_embedder(RagConfig().embedding.model_copy(update={"backend": "torch"})).warm_up()
        raise SystemExit("FAILED: the torch backend worked without the torch extra")
    except EmbedderError as error:
        check("rag-model[torch]" in str(error), f"unhelpful error: {error}")

    import mlflow.pyfunc

    uri = production_model(work, "core")
    model = mlflow.pyfunc.load_model(uri)
    reply = answer_of(model.predict(pd.DataFrame({"question": [QUESTION]})))
    check("1066" in reply, f"registry answer {reply!r} lacks '1066'")
    not_imported("torch", "sentence_transformers", "transformers", "flask")


def smoke_serve(work: Path) -> None:
    """The server the image runs: the app in process, then gunicorn with the image's command."""
    installed_copy()
    not_installed(*HEAVY, "matplotlib")
    uri = production_model(work, "serve")
    os.environ["RAG_MODEL_URI"] = uri
    from serving import create_app

    client = create_app().test_client()
    check(client.get("/health").status_code == 200, "/health is not 200")
    deadline = time.monotonic() + 120
    while client.get("/ready").status_code != 200:
        check(
            time.monotonic() < deadline, f"/ready not 200 after 120 s: {client.get('/ready').json}"
        )
        time.sleep(0.5)
    reply = client.post("/v1/query", json={"question": QUESTION})
    check(reply.status_code == 200, f"/v1/query: {reply.status_code} {reply.get_data(True)}")
    check("1066" in reply.json["answer"], f"answer {reply.json['answer']!r} lacks '1066'")
    for route in ("/metrics", "/openapi.json", "/version"):
        check(client.get(route).status_code == 200, f"{route} is not 200")
    not_imported("torch", "sentence_transformers", "transformers")
    serve_with_gunicorn(work)


def serve_with_gunicorn(work: Path) -> None:
    """Start the Dockerfile's CMD from the installed package and ask it one question."""
    import socket
    import urllib.request

    import serving

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = Path(serving.__file__).with_name("gunicorn.conf.py")
    env = {**os.environ, "RAG_BIND": f"127.0.0.1:{port}", "RAG_WORKERS": "1"}
    log = (work / "gunicorn.log").open("w")
    server = subprocess.Popen(
        [shutil.which("gunicorn") or "gunicorn", "-c", str(conf), "serving:create_app()"],
        cwd=work,  # not the checkout: the workers import the installed package
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            check(server.poll() is None, f"gunicorn exited; see {log.name}")
            try:
                with urllib.request.urlopen(f"{base}/ready", timeout=5) as ready:
                    if ready.status == 200:
                        break
            except OSError:
                pass
            check(time.monotonic() < deadline, f"gunicorn not ready in 120 s; see {log.name}")
            time.sleep(0.5)
        request = urllib.request.Request(
            f"{base}/v1/query",
            data=json.dumps({"question": QUESTION}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            check("1066" in json.load(reply)["answer"], "gunicorn's answer lacks '1066'")
    finally:
        server.terminate()
        server.wait(timeout=60)


def smoke_eval(work: Path) -> None:
    """IR metrics (ranx), ragas's offline answer metrics, the report stack and the CLI."""
    installed_copy()
    not_installed("torch", "sentence_transformers", "pyspark", "flask", "llama_index")
    from evaluation.answer_metrics import AnswerCase, OfflineAnswerMetrics
    from evaluation.report.html import template_environment  # noqa: F401 - jinja2 + plots
    from evaluation.retrieval_metrics import retrieval_scores
    from rag_model.embedders import HashEmbedder

    scores = retrieval_scores([["a", "b", "c"]], [["b"]], k=2)
    check(abs(scores.means["mrr_at_2"] - 0.5) < 1e-9, f"ranx MRR@2: {scores}")
    case = AnswerCase(
        question=QUESTION,
        answer="1066 [1]",
        retrieved_contexts=[DOCUMENTS["normans.txt"]],
        reference_answers=["1066"],
        reference_contexts=[DOCUMENTS["normans.txt"]],
    )
    answer_scores = OfflineAnswerMetrics(HashEmbedder()).score(case)
    check(answer_scores["exact_match"] == 1.0, f"ragas exact match: {answer_scores}")
    check(answer_scores["context_recall"] == 1.0, f"ragas context recall: {answer_scores}")
    cli = subprocess.run(
        [shutil.which("rag-model") or "rag-model", "--help"], capture_output=True, text=True
    )
    check(cli.returncode == 0 and "evaluate" in cli.stdout, f"rag-model --help: {cli.stderr}")


def smoke_spark(work: Path) -> None:
    """rag_spark's modules; with Java, score a question with spark_udf on local[1]."""
    installed_copy()
    not_installed("torch", "sentence_transformers", "ragas", "flask")
    import pyarrow  # noqa: F401 - spark_udf's pandas UDFs exchange data through it

    from rag_spark.scoring import score_questions
    from rag_spark.session import spark_session

    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        print("spark: no Java runtime; imports checked, scoring skipped")
        return
    uri = production_model(work, "spark")
    spark = spark_session(master="local[1]")
    try:
        frame = spark.createDataFrame([(QUESTION,)], ["question"])
        (row,) = score_questions(frame, uri).select("prediction.answer").collect()
        check("1066" in row["answer"], f"spark answer {row['answer']!r} lacks '1066'")
    finally:
        spark.stop()


def smoke_torch(work: Path) -> None:
    """Export MiniLM to ONNX, match it to sentence-transformers, register an onnx version."""
    installed_copy()
    not_installed("flask", "pyspark", "ragas", "llama_index")
    import numpy as np

    from rag_model.embedders import (
        OnnxEmbedder,
        SentenceTransformerEmbedder,
        bundled_minilm_dir,
    )
    from rag_model.onnx_export import exported_minilm_dir

    texts = [QUESTION, DOCUMENTS["oxygen.md"]]
    torch_vectors = SentenceTransformerEmbedder(bundled_minilm_dir(), threads=1).embed(texts)
    onnx_vectors = OnnxEmbedder(exported_minilm_dir(quantize=False), threads=1).embed(texts)
    cosine = float(np.min(np.sum(torch_vectors * onnx_vectors, axis=1)))
    check(cosine > 0.9999, f"onnx vs torch cosine {cosine}")
    shutil.rmtree(work / ONNX_STORE, ignore_errors=True)
    register({"embedding": {"backend": "onnx"}}, work / ONNX_STORE)


def smoke_llama_index(work: Path) -> None:
    """The sentence chunking strategy and the LlamaIndex retriever adapter."""
    installed_copy()
    not_installed("torch", "pyspark", "ragas", "flask")
    from rag_model.adapters.llama_index import RagModelLlamaRetriever  # noqa: F401
    from rag_model.chunking import chunk_documents
    from rag_model.config import ChunkingConfig
    from rag_model.documents import Document
    from rag_model.embedders import HashEmbedder

    text = " ".join([DOCUMENTS["normans.txt"]] * 20)
    config = ChunkingConfig(strategy="sentence", chunk_size=64, chunk_overlap=8)
    chunks = chunk_documents([Document("d", text)], config, HashEmbedder().token_counter())
    check(len(chunks) > 1, f"the sentence strategy made {len(chunks)} chunk(s)")


CHECKS: dict[str, Callable[[Path], None]] = {
    "core": smoke_core,
    "serve": smoke_serve,
    "eval": smoke_eval,
    "spark": smoke_spark,
    "torch": smoke_torch,
    "llama-index": smoke_llama_index,
}


def main() -> None:
    """Run the check the command line names."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extra", choices=sorted(CHECKS))
    parser.add_argument("--work", type=Path, help="shared scratch folder (default: a temp dir)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="rag-extras-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    CHECKS[args.extra](work)
    print(f"{args.extra}: smoke test passed in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
