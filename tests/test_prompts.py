import pytest

from textsleep.errors import UserError
from textsleep.prompts import Prompt, parse_prompts


def test_several_weighted_prompts():
    ps = parse_prompts("a red cube:2| a blue sky |fog:-0.5")
    assert ps == [Prompt("a red cube", 2.0), Prompt("a blue sky", 1.0), Prompt("fog", -0.5)]


def test_negatives_are_pushed_away():
    ps = parse_prompts("tree", negatives=["leaves", "snow:3"])
    assert [(p.value, p.weight) for p in ps] == [("tree", 1.0), ("leaves", -1.0), ("snow", -3.0)]


@pytest.mark.parametrize("text", ["", "   ", "|", "a|"])
def test_empty_prompt_is_an_error(text):
    with pytest.raises(UserError, match="empty"):
        parse_prompts(text)


def test_weight_must_be_a_number():
    with pytest.raises(UserError, match=r"weight 'x' is not a number"):
        parse_prompts("a:x")


def test_all_negative_is_an_error():
    with pytest.raises(UserError, match="positive"):
        parse_prompts("a:-1")


def test_image_prompts(tmp_path):
    from PIL import Image

    good = tmp_path / "p.png"
    Image.new("RGB", (8, 8)).save(good)
    ps = parse_prompts("", images=[f"{good}:0.5"])
    assert ps == [Prompt(str(good), 0.5, "image")]
    with pytest.raises(UserError, match="no such file"):
        parse_prompts("x", images=[str(tmp_path / "missing.png")])
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(UserError, match="not an image"):
        parse_prompts("x", images=[str(bad)])
