"""Edit metrics measure what they claim: identity, a perfect recolour, a tint, and SDEdit."""

import numpy as np
import torch
import pytest
from sdd.domains.shapes import spec
from sdd.domains.shapes.edits import target_of
from sdd.domains.shapes.judge import ShapesJudge
from sdd.domains.shapes.render import generate
from sdd.eval import SDEditEditor, evaluate
from sdd.eval.metrics import background_psnr
from sdd.io.images import to_tensor_range


@pytest.fixture(scope="module")
def judge():
    return ShapesJudge.from_pretrained()


@pytest.fixture(scope="module")
def sources():
    return generate(200, seed=31)


def perfect_recolour(sources, color):
    """Re-render every source with the same geometry and background but the target colour:
    the ideal edit (its anti-aliased edges mix the new colour with the background, not the old)."""
    from sdd.domains.shapes.render import composite
    from sdd.eval.metrics import background_colours

    target = np.tile(np.array(spec.COLOR_RGB[color], dtype=float), (len(sources), 1))
    return composite(sources.masks, target, background_colours(sources))


def test_identity_preserves_everything_and_edits_only_what_was_already_red(sources, judge):
    report = evaluate(lambda x: x, sources, {"color": "red"}, judge)
    already_red = (sources.labels["color"] == spec.COLORS.index("red")).mean()
    assert report.editability == pytest.approx(already_red, abs=0.02)
    assert all(v == 1.0 for v in report.preservation.values())
    assert report.background_psnr == float("inf")


def test_a_perfect_recolour_scores_full_marks(sources, judge):
    edited = perfect_recolour(sources, "blue")
    report = evaluate(lambda x: to_tensor_range(edited), sources, {"color": "blue"}, judge, batch_size=len(edited))
    assert report.editability >= 0.99
    assert min(report.preservation.values()) >= 0.99
    assert report.background_psnr == float("inf")


def test_a_background_tint_lowers_psnr(sources):
    tinted = np.clip(sources.images.astype(int) + 10, 0, 255).astype(np.uint8)
    assert background_psnr(sources, tinted) == pytest.approx(20 * np.log10(255 / 10), abs=0.3)


def test_targets_of_prompts():
    assert target_of("a red object") == {"color": "red"}
    assert target_of("a large object on a black background") == {"size": "large", "background": "black"}
    with pytest.raises(ValueError, match="names no shapes attribute"):
        target_of("a thing")
    with pytest.raises(ValueError, match="unknown target"):
        evaluate(lambda x: x, generate(2, 0), {"color": "pink"}, None)


def test_sdedit_runs_through_the_same_evaluation(sources, judge):
    from sdd.teachers import load_teacher

    teacher = load_teacher("shapes")
    small = generate(16, seed=3)
    weak = SDEditEditor(teacher, "a red object", strength=0.1, guidance_scale=3.0, steps=20)
    report = evaluate(weak, small, {"color": "red"}, judge)
    assert weak.denoiser_calls_per_image == 2 * 2
    assert report.background_psnr > 20 and report.seconds_per_image > 0
    with pytest.raises(ValueError, match="strength"):
        SDEditEditor(teacher, "a red object", strength=0.0, guidance_scale=3.0)


def test_breakdown_finds_the_one_group_an_edit_fails(sources, judge):
    """Identity as a "make it red" edit: only sources already red count as edited, and only
    the groups whose background was tinted on purpose show a background shift."""
    from sdd.eval import breakdown

    beige = spec.BACKGROUNDS.index("beige")

    def editor(x):
        y = x.clone()
        on_beige = torch.from_numpy(sources.labels["background"] == beige)
        y[on_beige] = (y[on_beige] + 20 / 127.5).clamp(-1, 1)  # a +20/255 tint on beige images only
        return y

    groups = breakdown(editor, sources, {"color": "red"}, judge, batch_size=len(sources))
    assert groups["n"].sum() == len(sources)
    assert set(groups.columns) >= {"editability", "kept_shape", "kept_size", "kept_background", "background_shift", "object_r"}
    red = groups["source_color"] == "red"
    assert (groups.loc[red, "editability"] > 0.9).all() and (groups.loc[~red, "editability"] < 0.1).all()
    on_beige = groups["background"] == "beige"
    assert groups.loc[on_beige, "background_shift"].between(19, 21).all()
    assert (groups.loc[~on_beige, "background_shift"] < 0.5).all()


def pasted_disc(sources, color):
    """A disc of the target colour pasted in the corner furthest from each object: what an
    unconstrained manipulator paints when the guidance asks for a colour."""
    from sdd.domains.shapes.render import composite, coverage

    n = len(sources)
    far_x = np.where(sources.cx > 16, 6.0, 26.0)
    far_y = np.where(sources.cy > 16, 6.0, 26.0)
    disc = coverage(np.zeros(n, int), far_x, far_y, np.full(n, 5.0))
    painted = composite(disc, np.tile(np.array(spec.COLOR_RGB[color], float), (n, 1)), np.zeros((n, 3)))
    return np.where(disc[..., None] > 0, np.rint(painted + sources.images * (1 - disc[..., None])), sources.images).astype(np.uint8)


def test_a_pasted_disc_counts_as_no_edit_even_where_the_judge_reads_the_colour(sources, judge):
    from sdd.eval.metrics import score_edits

    report = score_edits(sources, pasted_disc(sources, "red"), {"color": "red"}, judge)
    already_red = (sources.labels["color"] == spec.COLORS.index("red")).mean()
    assert report.editability <= 0.02  # no image with two objects counts, already-red ones included
    assert report.clean <= 0.1
    assert set(report.failures) <= {"several objects", "foreign pixels", "outline fits no shape"}, report.failures
    assert max(report.preservation.values()) <= 0.1
    assert report.judge["editability"] > already_red + 0.1  # the learned judge alone is fooled


def test_a_recolour_that_grows_the_object_is_not_in_place(sources, judge):
    from sdd.domains.shapes.render import composite, coverage
    from sdd.eval.metrics import score_edits

    grown = coverage(sources.labels["shape"], sources.cx, sources.cy, sources.radius + 2.0)
    background = sources.images[:, 0, 0].astype(float)
    small = sources.labels["size"] == spec.SIZES.index("small")
    edited = composite(grown, np.tile(np.array(spec.COLOR_RGB["blue"], float), (len(sources), 1)), background)
    report = score_edits(sources, edited, {"color": "blue"}, judge)
    assert report.in_place < 0.5
    assert report.editability <= report.in_place
    perfect = score_edits(sources, perfect_recolour(sources, "blue"), {"color": "blue"}, judge)
    assert perfect.in_place == 1.0 and perfect.clean == 1.0 and perfect.editability >= 0.99
    assert small.any()
