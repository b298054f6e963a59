"""Bad inputs to the `rag-model` CLI and `mlflow run`: one clear line, a non-zero exit, no trace.

Each row runs the console script's own entry (``run_cli``) in-process against one SQLite store
(made once: a fresh store per row costs seconds of migrations) and checks the exact output, the
exit code, and that the store holds no registered version and no run left RUNNING (a run that
started ends FAILED with the error tagged). A few rows also go through a real ``mlflow run``.

"Unreadable file" rows use a folder where a file is expected, or bytes that are not UTF-8 / not
JSON / not YAML: ``chmod 000`` does not stop root, which runs the tests here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from experiments.cli import run_cli
from tests.conftest import SAMPLE_CORPUS, SAMPLE_EVAL, use_tracking_store
from tests.experiments.test_mlflow_run import mlflow_run

DATA = ["--data-path", str(SAMPLE_CORPUS)]
EVAL = ["--eval-path", str(SAMPLE_EVAL)]
OVERLAP_HINT = (
    "use the eval set made for this corpus, or make its relevant_ids name the corpus's document ids"
)


def rag_model(*args: str) -> tuple[int, str]:
    """Run ``rag-model ARGS`` as the console script does; return the exit code and output."""
    with CliRunner().isolation() as (_, _, output):
        try:
            run_cli(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, output.getvalue().decode()


class Files:
    """Bad inputs of every kind, written under one folder."""

    def __init__(self, root: Path, store_uri: str = "") -> None:
        root.mkdir()
        self.root = root
        self.store_uri = store_uri
        self.missing = root / "missing"
        self.empty_dir = self._dir("empty")
        self.empty_jsonl = self._file("empty.jsonl", b"")
        self.csv = self._file("corpus.csv", b"id,text\na,Some text\n")
        self.latin1 = self._file("latin1.jsonl", b'{"id": "a", "text": "caf\xe9"}\n')
        self.not_json = self._file("broken.jsonl", b'{"id": "a", "text": "fine"}\n{not json\n')
        self.eval_csv = self._file("eval.csv", b"question\nWho?\n")
        self.eval_not_json = self._file("eval-broken.jsonl", b"not json\n")
        self.eval_latin1 = self._file("eval-latin1.jsonl", b'{"question": "caf\xe9?"}\n')
        self.eval_dir = self._dir("eval-folder")
        self.eval_empty = self._file("eval-empty.jsonl", b"\n")
        self.eval_other = self._file(
            "eval-other.jsonl",
            b'{"question": "What is a quark?", "relevant_ids": ["physics-001"]}\n'
            b'{"question": "What is a gluon?", "relevant_ids": ["physics-002", "physics-003"]}\n'
            b'{"question": "What is a boson?", "relevant_ids": ["physics-004"]}\n',
        )
        self.config_dir = self._dir("config-folder")
        self.config_not_yaml = self._file("not-yaml.yaml", b"retrieval: [k: 4\n")
        self.config_latin1 = self._file("latin1.yaml", b"retrieval:\n  k: 4  # caf\xe9\n")
        self.config_unknown_key = self._file("unknown-key.yaml", b"retrieval:\n  kk: 4\n")
        self.config_unknown_section = self._file("unknown-section.yaml", b"retrievel:\n  k: 4\n")
        self.config_wrong_type = self._file("wrong-type.yaml", b"retrieval:\n  k: '4'\n")
        self.config_list = self._file("list.yaml", b"- retrieval\n")

    def _dir(self, name: str) -> Path:
        (self.root / name).mkdir()
        return self.root / name

    def _file(self, name: str, data: bytes) -> Path:
        (self.root / name).write_bytes(data)
        return self.root / name


def sample_ids_hint() -> str:
    return "e.g. 'Amazon_rainforest-000', 'Amazon_rainforest-001', 'Amazon_rainforest-002', ..."


# (args, exit code, the one line after "Error: "), each built from the Files of the test
Row = Callable[[Files], tuple[list[str], int, str]]
ROWS: dict[str, Row] = {
    # data paths
    "missing data path": lambda f: (
        ["main", "--fake", "--data-path", str(f.missing), *EVAL],
        1,
        f"data path {f.missing} does not exist; pass a folder or a .jsonl file",
    ),
    "empty data path": lambda f: (
        ["main", "--fake", "--data-path", "", *EVAL],
        1,
        "the data path is empty; pass a folder of documents or a .jsonl file",
    ),
    "empty data folder": lambda f: (
        ["main", "--fake", "--data-path", str(f.empty_dir), *EVAL],
        1,
        f"no documents found in {f.empty_dir}: expected .txt, .md, .html, .htm, .pdf, .jsonl files",
    ),
    "empty data file": lambda f: (
        ["build_index", "--fake", "--data-path", str(f.empty_jsonl)],
        1,
        f"no documents found in {f.empty_jsonl}: no records",
    ),
    "data file of an unsupported type": lambda f: (
        ["main", "--fake", "--data-path", str(f.csv), *EVAL],
        1,
        f"data path {f.csv}: unsupported type .csv; pass a folder or a .txt, .md, .html, .htm, "
        ".pdf, .jsonl file",
    ),
    "data file not UTF-8": lambda f: (
        ["main", "--fake", "--data-path", str(f.latin1), *EVAL],
        1,
        f"cannot read {f.latin1}: not valid UTF-8 text (byte 24); fix or remove the file",
    ),
    "data file not JSON lines": lambda f: (
        ["build_index", "--fake", "--data-path", str(f.not_json)],
        1,
        f"cannot read {f.not_json}: line 2: invalid JSON (Expecting property name enclosed in "
        "double quotes); fix or remove the file",
    ),
    # eval sets
    "missing eval set": lambda f: (
        ["main", "--fake", *DATA, "--eval-path", str(f.missing)],
        1,
        f"eval set {f.missing} does not exist; pass a .jsonl file, a SQuAD .json file or a BEIR "
        "folder (queries.jsonl + qrels/)",
    ),
    "eval set of an unsupported type": lambda f: (
        ["main", "--fake", *DATA, "--eval-path", str(f.eval_csv)],
        1,
        f"eval set {f.eval_csv}: unsupported type .csv; use .jsonl, a SQuAD .json file or a "
        "BEIR folder",
    ),
    "eval set not JSON": lambda f: (
        ["main", "--fake", *DATA, "--eval-path", str(f.eval_not_json)],
        1,
        f"eval set {f.eval_not_json} has 1 bad line(s): line 1: Expecting value: line 1 "
        "column 1 (char 0)",
    ),
    "eval set not UTF-8": lambda f: (
        ["main", "--fake", *DATA, "--eval-path", str(f.eval_latin1)],
        1,
        f"eval set file {f.eval_latin1} is not UTF-8 text (byte 17); save it as UTF-8",
    ),
    "eval set a folder where a file is expected": lambda f: (
        ["main", "--fake", *DATA, "--eval-path", str(f.eval_dir)],
        1,
        f"BEIR eval set {f.eval_dir} lacks queries.jsonl; a BEIR folder has queries.jsonl and "
        "qrels/<split>.tsv (choose the split with --split)",
    ),
    "empty eval set": lambda f: (
        ["evaluate", "--eval-path", str(f.eval_empty)],
        1,
        f"eval set {f.eval_empty} has no questions; add at least one (see docs/evaluation.md)",
    ),
    "eval set with no overlap with the corpus": lambda f: (
        ["main", "--fake", *DATA, "--eval-path", str(f.eval_other)],
        1,
        f"eval set {f.eval_other} shares no document id with the corpus {SAMPLE_CORPUS}: its 4 "
        "relevant id(s) (e.g. 'physics-001', 'physics-002', 'physics-003', ...) match none of "
        f"the corpus's 178 document id(s) ({sample_ids_hint()}); {OVERLAP_HINT}",
    ),
    "sweep with an eval set of no overlap": lambda f: (
        ["sweep", "--fake", *DATA, "--eval-path", str(f.eval_other), "--no-cache"],
        1,
        f"eval set {f.eval_other} shares no document id with the corpus {SAMPLE_CORPUS}: its 4 "
        "relevant id(s) (e.g. 'physics-001', 'physics-002', 'physics-003', ...) match none of "
        f"the corpus's 178 document id(s) ({sample_ids_hint()}); {OVERLAP_HINT}",
    ),
    # configs
    "missing config": lambda f: (
        ["main", "--fake", *DATA, *EVAL, "--config", str(f.missing)],
        1,
        f"cannot read config file {f.missing}: No such file or directory",
    ),
    "config a folder where a file is expected": lambda f: (
        [
            "build",
            "--data-path",
            str(SAMPLE_CORPUS),
            "--out",
            str(f.root / "out"),
            "--config",
            str(f.config_dir),
        ],
        1,
        f"cannot read config file {f.config_dir}: Is a directory",
    ),  # fmt: skip
    "config not YAML": lambda f: (
        ["main", "--fake", *DATA, *EVAL, "--config", str(f.config_not_yaml)],
        1,
        f"config file {f.config_not_yaml} is not valid YAML: expected ',' or ']', but got "
        "'<stream end>' at line 2, column 1",
    ),
    "config not UTF-8": lambda f: (
        ["main", "--fake", *DATA, *EVAL, "--config", str(f.config_latin1)],
        1,
        f"config file {f.config_latin1} is not UTF-8 text (byte 24); save it as UTF-8 YAML",
    ),
    "config with an unknown key": lambda f: (
        ["main", "--fake", *DATA, *EVAL, "--config", str(f.config_unknown_key)],
        1,
        f"{f.config_unknown_key}: invalid config: retrieval.kk: unknown key (check the "
        "spelling; see RagConfig for keys)",
    ),
    "config with an unknown section": lambda f: (
        ["sweep", "--fake", *DATA, *EVAL, "--config", str(f.config_unknown_section)],
        1,
        f"{f.config_unknown_section}: invalid config: retrievel: unknown key (check the "
        "spelling; see RagConfig for keys)",
    ),
    "config value of the wrong type": lambda f: (
        ["main", "--fake", *DATA, *EVAL, "--config", str(f.config_wrong_type)],
        1,
        f"{f.config_wrong_type}: invalid config: retrieval.k: Input should be a valid integer "
        "(got '4')",
    ),
    "config not a mapping": lambda f: (
        ["main", "--fake", *DATA, *EVAL, "--config", str(f.config_list)],
        1,
        f"{f.config_list}: config must be a mapping of sections, got list",
    ),
    # parameters (usage errors: one line too, with where the help is)
    "parameter not a number": lambda f: (
        ["main", "--fake", *DATA, *EVAL, "--k", "abc"],
        2,
        "Invalid value for '--k': 'abc' is not an integer (see 'rag-model main --help')",
    ),
    "parameter out of range": lambda f: (
        ["promote", "--tolerance", "-1"],
        2,
        "Invalid value for '--tolerance': '-1' must be a number >= 0 "
        "(see 'rag-model promote --help')",
    ),
    "unknown option": lambda f: (
        ["evaluate", "--versoin", "3"],
        2,
        "No such option '--versoin'. Did you mean '--version'? (see 'rag-model evaluate --help')",
    ),
    # registry
    "unknown registered model (evaluate)": lambda f: (
        ["evaluate", "--model-name", "nope", *EVAL],
        1,
        f"registered model 'nope' does not exist in {f.store_uri}; run 'mlflow run . -e main' "
        "to build and register one, or check MLFLOW_TRACKING_URI",
    ),
    "unknown registered model (promote)": lambda f: (
        ["promote", "--model-name", "nope"],
        1,
        f"registered model 'nope' does not exist in {f.store_uri}; run 'mlflow run . -e main' "
        "to build and register one, or check MLFLOW_TRACKING_URI",
    ),
    "unknown registered model (history)": lambda f: (
        ["history", "--model-name", "nope"],
        1,
        f"registered model 'nope' does not exist in {f.store_uri}; run 'mlflow run . -e main' "
        "to build and register one, or check MLFLOW_TRACKING_URI",
    ),
    "unknown registered model (rollback)": lambda f: (
        ["rollback", "--model-name", "nope"],
        1,
        f"registered model 'nope' does not exist in {f.store_uri}; run 'mlflow run . -e main' "
        "to build and register one, or check MLFLOW_TRACKING_URI",
    ),
    "unknown registered model (report)": lambda f: (
        ["report", "--model-name", "nope", "--out", str(f.root / "site")],
        1,
        "no registered model 'nope'; register one with `rag-model main` first",
    ),
    "unknown alias": lambda f: (
        ["evaluate", "--version", "staging", *EVAL],
        1,
        "model 'rag-model' has no alias 'staging' (aliases: none): Registered model alias "
        "staging not found.",
    ),
    "unknown version": lambda f: (
        ["promote", "--version", "7"],
        1,
        "model 'rag-model' has no version '7' (aliases: none): Model Version (name=rag-model, "
        "version=7) not found",
    ),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One SQLite store for every row, holding a registered model with no versions."""
    with pytest.MonkeyPatch.context() as patch:  # the store's variables are restored after
        patch.setenv("MLFLOW_TRACKING_URI", "")
        patch.setenv("MLFLOW_REGISTRY_URI", "")
        uri = use_tracking_store(tmp_path_factory.mktemp("store"))
        MlflowClient().create_registered_model("rag-model")  # unknown aliases are asked of it
        yield uri
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]


def all_runs(client: MlflowClient) -> list:
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


@pytest.mark.parametrize("row", list(ROWS))
def test_a_bad_input_is_refused_in_one_line(store: str, tmp_path: Path, row: str) -> None:
    client = MlflowClient()
    before = {run.info.run_id for run in all_runs(client)}
    args, code, message = ROWS[row](Files(tmp_path / "inputs", store))

    exit_code, output = rag_model(*args)

    assert (exit_code, output) == (code, f"Error: {message}\n")
    # nothing half-written: no version, no lock left, no run RUNNING; a started run says why
    assert client.search_model_versions() == []
    assert [model.name for model in client.search_registered_models()] == ["rag-model"]
    for run in all_runs(client):
        assert run.info.status == "FAILED", run.info
        if run.info.run_id not in before:
            assert message in run.data.tags["error"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("entry", "params", "message"),
    [
        (
            "main",
            ["data_path={missing}", f"eval_path={SAMPLE_EVAL}"],
            "data path {missing} does not exist; pass a folder or a .jsonl file",
        ),
        (
            "main",
            [f"data_path={SAMPLE_CORPUS}", "eval_path={eval_other}"],
            "eval set {eval_other} shares no document id with the corpus",
        ),
    ],
    ids=["missing data path", "eval set sharing no id with the corpus"],
)
def test_a_bad_input_fails_the_mlflow_run_and_registers_nothing(
    tmp_path: Path, entry: str, params: list[str], message: str
) -> None:
    files = Files(tmp_path / "inputs")
    paths = {"missing": files.missing, "eval_other": files.eval_other}

    done = mlflow_run(tmp_path, entry, *(p.format(**paths) for p in params))

    expected = message.format(**paths)
    assert done.returncode != 0
    assert f"Error: {expected}" in done.stderr
    assert "Traceback" not in done.stderr
    client = MlflowClient(store := f"sqlite:///{tmp_path / 'mlflow.db'}", registry_uri=store)
    (run,) = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert run.info.status == "FAILED"
    assert expected in run.data.tags["error"]
    assert client.search_registered_models() == []
