"""conda.yaml (for `mlflow run .` with conda) pins what pyproject.toml pins for running the jobs.

That is the core plus every extra except ``test`` and ``dev`` (the entry points build with
torch, evaluate with the eval extra, may chunk by sentence and score on Spark).
"""

import tomllib

import yaml

from tests.conftest import PROJECT

NOT_IN_CONDA = {"test", "dev"}


def test_conda_env_matches_the_pinned_dependencies() -> None:
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    conda = yaml.safe_load((PROJECT / "conda.yaml").read_text())
    (pip,) = [d["pip"] for d in conda["dependencies"] if isinstance(d, dict)]
    pinned = list(project["dependencies"])
    for extra, requirements in project["optional-dependencies"].items():
        if extra not in NOT_IN_CONDA:
            pinned += requirements
    assert sorted(pip, key=str.lower) == sorted(pinned, key=str.lower)
