import pytest

from textsleep.errors import UserError
from textsleep.imagenet import class_label, class_names, resolve_class, search_classes


def test_a_thousand_names_offline():
    names = class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[971] == "bubble"
    assert class_label(971) == "971) bubble"


@pytest.mark.parametrize("spec", [971, "971", "bubble", "Bubble", "971) bubble", "971)", " '971) bubble' ", '"BUBBLE"'])
def test_resolve_by_index_name_or_label(spec):
    assert resolve_class(spec) == 971


def test_resolve_names():
    assert resolve_class("  golden   RETRIEVER ") == 207
    assert resolve_class("Geoffroy's spider monkey") == 381
    assert resolve_class("kite (bird of prey)") == 21
    assert resolve_class("lady's slipper") == 986  # part of exactly one name
    assert all(resolve_class(class_label(i)) == i for i in range(1000))
    exact_and_partial = next(
        (i, n)
        for i, n in enumerate(class_names())
        if sum(n.lower() in m.lower() for m in class_names()) > 1 and class_names().count(n) == 1
    )
    assert (
        resolve_class(exact_and_partial[1]) == exact_and_partial[0]
    )  # the exact name wins over longer names containing it


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UserError, match=r"^unknown class 'bubbel'; closest: 971\) bubble"):
        resolve_class("bubbel")
    with pytest.raises(UserError, match=r"unknown class 'xqzwvj'; allowed: an index 0\.\.999"):
        resolve_class("xqzwvj")


@pytest.mark.parametrize("spec", [1000, -1, "1000", "-1", "1000) bubble"])
def test_index_out_of_range(spec):
    with pytest.raises(UserError, match=r"index (-1|1000) is out of range; allowed: 0\.\.999"):
        resolve_class(spec)


def test_ambiguous_and_inconsistent_names():
    with pytest.raises(UserError, match=r"'retriever' matches several: 205\) .*207\) Golden Retriever.*full name"):
        resolve_class("retriever")
    with pytest.raises(UserError, match=r"matches several: 657\) missile, 744\) missile; give the index$"):
        resolve_class("missile")  # the same name twice in the list
    assert resolve_class("744) missile") == 744
    with pytest.raises(UserError, match=r"971 is 'bubble', not 'tench'"):
        resolve_class("971) tench")
    for empty in ("", "  ", "''"):
        with pytest.raises(UserError, match="empty"):
            resolve_class(empty)


def test_search():
    assert search_classes() == list(enumerate(class_names())) == search_classes("  ")
    golden = search_classes("GOLDEN")
    assert (207, "Golden Retriever") in golden and all("golden" in n.lower() for _, n in golden)
    assert search_classes("971") == [(971, "bubble")] == search_classes("971) bubble")
    assert search_classes("5000") == []
    assert search_classes("bubbel")[0] == (971, "bubble")  # fuzzy when nothing contains the query
    assert search_classes("missle")[:2] == [(657, "missile"), (744, "missile")]
