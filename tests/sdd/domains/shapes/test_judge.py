"""The shipped judge is an instrument: >= 99% per attribute on fresh images."""

import pytest

from sdd.domains.shapes.judge import ShapesJudge
from sdd.domains.shapes.train_judge import accuracy


@pytest.fixture(scope="module")
def judge():
    return ShapesJudge.from_pretrained()


def test_judge_reads_every_attribute_of_2000_fresh_images(judge):
    acc = accuracy(judge, n=2000, seed=98765)
    assert set(acc) == {"shape", "color", "size", "background"}
    for attribute, value in acc.items():
        assert value >= 0.99, f"{attribute}: {value:.3f}"


def test_judge_id_names_its_weights(judge):
    assert judge.id.startswith("shapes-judge@") and "unknown" not in judge.id
