"""conda.yaml (for `mlflow run .` with conda) pins exactly what pyproject.toml pins."""

import tomllib

import yaml

from tests.conftest import PROJECT


def test_conda_env_matches_the_pinned_dependencies() -> None:
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    conda = yaml.safe_load((PROJECT / "conda.yaml").read_text())
    (pip,) = [d["pip"] for d in conda["dependencies"] if isinstance(d, dict)]
    assert sorted(pip, key=str.lower) == sorted(project["dependencies"], key=str.lower)
