"""The explainer class is the one description of a method: registering one is all it takes to list it."""

import pytest
import torch
from gradio_client import Client

from empexp import cli, list_explainers
from empexp.app import build_app, imitated
from empexp.explainers import Explainer, display_name, explainer_class, register
from empexp.explainers import registry as registry_module
from empexp.explainers.base import Attribution
from tests.conftest import serving


@pytest.fixture()
def length_explainer():
    """A made-up empirical explainer, registered for one test and removed after it."""

    @register
    class LengthExplainer(Explainer):
        name = "empirical-length"
        display_name = "Token position"
        description = "Scores each token by its position: a stand-in for a trained explainer."
        kind = "empirical"
        imitates = "ig"

        def __init__(self, classifier, *, source=None):  # what the app passes a trained explainer
            super().__init__(classifier)
            self.source, self.revision = source, None

        def attribute(self, batch, prediction):
            positions = torch.arange(batch.input_ids.shape[1], dtype=torch.float).expand_as(batch.input_ids)
            return Attribution(positions.masked_fill(batch.special_tokens_mask, 0.0))

    yield LengthExplainer
    del registry_module._REGISTRY[LengthExplainer.name]


def test_a_registered_explainer_is_listed_everywhere(length_explainer, bert):
    assert "empirical-length" in list_explainers()
    assert (
        display_name("empirical-length") == "Token position" and explainer_class("empirical-length") is length_explainer
    )
    method = next(a for a in cli.build_parser()._subparsers._group_actions[0].choices["explain"]._actions
                  if a.dest == "method")  # fmt: skip
    assert "empirical-length" in method.choices and "Token position" in method.help
    assert imitated()["empirical-length"] == "ig"
    explanation = length_explainer(bert).explain("the movie was great")[0]
    assert explanation.method == "empirical-length" and explanation.scores[1:3] == [1.0, 2.0]
    # The app gives it a view in IG's row and an answer from its endpoint, with no change elsewhere.
    with serving(build_app(bert, {"empirical-length": "nowhere"})) as url:
        client = Client(url, analytics_enabled=False, verbose=False)
        assert any(c.get("props", {}).get("elem_id") == "view-empirical-length" for c in client.config["components"])
        *_, raw = client.predict("the movie was great", api_name="/explain_empirical")
        assert [e["method"] for e in raw] == ["empirical-length"] and raw[0]["scores"][1:3] == [1.0, 2.0]


def test_an_explainer_without_its_metadata_is_refused():
    class Anonymous(Explainer):
        name = "anonymous"

        def attribute(self, batch, prediction):
            raise NotImplementedError

    with pytest.raises(ValueError, match="display_name, description, kind"):
        register(Anonymous)


def test_every_registered_explainer_describes_itself():
    for name in list_explainers():
        cls = explainer_class(name)
        assert cls.display_name and cls.description.endswith(".") and cls.kind in ("expensive", "empirical",
                                                                                 "diffmask", "attention")  # fmt: skip
        assert (cls.imitates is not None) == (cls.kind == "empirical")
