import pytest

from textsleep import DreamSettings, UserError


@pytest.mark.parametrize(
    "change, message",
    [
        ({"size": 300}, r"--size 300: allowed sizes are 128, 256, 512"),
        ({"truncation": 0.0}, r"--truncation 0.0: must be in \(0, 1\]"),
        ({"truncation": 1.5}, r"--truncation 1.5"),
        ({"cutouts": 0}, r"--cutouts 0"),
        ({"iterations": 0}, r"--iterations 0"),
        ({"device": "tpu"}, r"--device 'tpu'"),
        ({"precision": "int8"}, r"--precision 'int8'"),
        ({"max_classes": 0}, r"--max-classes 0"),
    ],
)
def test_bad_values_name_the_value_and_what_is_allowed(change, message):
    with pytest.raises(UserError, match=message):
        DreamSettings(text="x", **change)


def test_round_trip_and_unknown_keys():
    s = DreamSettings(text="tree", images=("a.png",), seed=3)
    assert DreamSettings.from_dict(s.to_dict()) == s
    with pytest.raises(UserError, match="unknown setting"):
        DreamSettings.from_dict({"text": "x", "bogus": 1})
    assert s.biggan_name == "biggan-deep-512"
    assert s.replace(size=128).biggan_name == "biggan-deep-128"
