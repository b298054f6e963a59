"""Serving fixtures: a fake-embedder model injected into the app, and a test client."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from rag_model.build import build_snapshot
from rag_model.config import RagConfig
from rag_model.pipeline import RagPipeline
from serving import create_app
from serving.model_holder import ServedModel
from serving.settings import Settings
from tests.conftest import FAKE_CONFIG, SAMPLE_CORPUS

TEST_SETTINGS = Settings(max_k=10, max_batch=4, max_body_bytes=4096, max_question_chars=200)


def served_model(pipeline: RagPipeline) -> ServedModel:
    """A ServedModel over ``pipeline``, as a loaded version has."""
    return ServedModel(
        pipeline=pipeline,
        uri="models:/fake@production",
        name="fake",
        version="3",
        alias="production",
        run_id="run123",
    )


@pytest.fixture(scope="session")
def fake_pipeline(tmp_path_factory: pytest.TempPathFactory) -> RagPipeline:
    config = RagConfig.from_dict(FAKE_CONFIG)
    root: Path = tmp_path_factory.mktemp("served")
    build_snapshot(config, SAMPLE_CORPUS, root / "snapshot")
    return RagPipeline.from_snapshot(config, root / "snapshot")


@pytest.fixture
def client(fake_pipeline: RagPipeline) -> FlaskClient:
    app = create_app(TEST_SETTINGS, model=served_model(fake_pipeline))
    return app.test_client()
