import pytest

from empexp.explanation import Explanation


def make(**overrides) -> Explanation:
    fields = dict(
        text="not bad",
        tokens=["[CLS]", "not", "bad", "[SEP]"],
        offsets=[None, (0, 3), (4, 7), None],
        scores=[0.0, 0.5, -0.25, 0.0],
        method="ig",
        samples=20,
        target=1,
        label="positive",
        probabilities={"negative": 0.1, "positive": 0.9},
        forward_passes=23.0,
        seconds=0.1,
        details={"integration_method": "gausslegendre"},
    )
    return Explanation(**{**fields, **overrides})


def test_json_round_trip_keeps_every_field():
    explanation = make()
    assert Explanation.from_json(explanation.to_json()) == explanation


def test_misaligned_fields_are_rejected():
    with pytest.raises(ValueError, match="align"):
        make(scores=[0.0, 1.0])


def test_unknown_fields_are_rejected():
    data = make().to_dict() | {"colour": "red"}
    with pytest.raises(ValueError, match="colour"):
        Explanation.from_dict(data)
