"""The Space's files: README front matter, requirements.txt in step with pyproject.toml, app.py."""

from pathlib import Path

import gradio
import tomllib
from huggingface_hub import SpaceCard

from empexp.publish import SPACE_APP, space_requirements
from tests.local_hub import metadata_errors

ROOT = Path(__file__).resolve().parent.parent


def test_requirements_are_pyproject_dependencies_with_the_cpu_build_of_torch():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = space_requirements().splitlines()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    listed = [line for line in lines if line.strip() and not line.startswith(("#", "-"))]
    assert listed == project["dependencies"]
    # The repository's copy, for Spaces deployed from a git push, is the same file.
    assert (ROOT / "requirements.txt").read_text() == space_requirements()


def test_the_space_app_is_the_repository_app():
    assert (ROOT / "app.py").read_text() == SPACE_APP


def test_readme_front_matter_is_a_valid_gradio_space_card():
    content = (ROOT / "README.md").read_text()
    assert metadata_errors(content, "space") == []
    card = SpaceCard(content).data
    assert card.sdk == "gradio" and card.sdk_version == gradio.__version__
    assert (ROOT / card.app_file).is_file() and card.license == "apache-2.0"
    assert card.title and card.emoji and card.models
