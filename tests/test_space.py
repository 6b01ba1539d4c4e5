"""The Space's files: README front matter and requirements.txt in step with pyproject.toml."""

from pathlib import Path

import gradio
import tomllib
from huggingface_hub import SpaceCard
from packaging.requirements import Requirement

from tests.local_hub import metadata_errors

ROOT = Path(__file__).resolve().parent.parent


def requirements_txt() -> dict[str, Requirement]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    requirements = [Requirement(line) for line in lines if line.strip() and not line.startswith(("#", "-"))]
    return {r.name.lower(): r for r in requirements}


def test_requirements_match_pyproject_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {r.name.lower(): r for r in map(Requirement, project["dependencies"])}
    listed = requirements_txt()
    assert listed.keys() == declared.keys()
    for name, requirement in declared.items():
        assert listed[name].specifier == requirement.specifier, name


def test_requirements_take_the_cpu_build_of_torch():
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in (ROOT / "requirements.txt").read_text()


def test_readme_front_matter_is_a_valid_gradio_space_card():
    content = (ROOT / "README.md").read_text()
    assert metadata_errors(content, "space") == []
    card = SpaceCard(content).data
    assert card.sdk == "gradio" and card.sdk_version == gradio.__version__
    assert (ROOT / card.app_file).is_file() and card.license == "apache-2.0"
    assert card.title and card.emoji and card.models
