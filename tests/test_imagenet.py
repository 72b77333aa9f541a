import pytest

from textsleep.errors import UserError
from textsleep.imagenet import class_label, class_names, resolve_class, search_classes


def test_a_thousand_names_offline():
    names = class_names()
    assert len(names) == 1000 and names[971] == "bubble"
    assert class_label(971) == "971) bubble"


@pytest.mark.parametrize("spec", [971, "971", "bubble", "Bubble", "971) bubble", " '971) bubble' "])
def test_resolve_by_index_name_or_label(spec):
    assert resolve_class(spec) == 971


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UserError, match=r"unknown class 'bubbel'; closest: 971\) bubble"):
        resolve_class("bubbel")
    with pytest.raises(UserError, match="between 0 and 999"):
        resolve_class(1000)
    with pytest.raises(UserError, match="matches several"):
        resolve_class("retriever")


def test_search():
    assert len(search_classes()) == 1000
    assert (207, class_names()[207]) in search_classes("golden")
    assert search_classes("971") == [(971, "bubble")]
    assert search_classes("bubbel")[0] == (971, "bubble")
