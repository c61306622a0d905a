"""QEMU's option strings: commas in a value doubled, and read back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pyvirt.qemu import keyval


def test_split_reads_doubled_commas_as_one() -> None:
    assert keyval.split("file=/a,,b,snapshot=external") == ["file=/a,b", "snapshot=external"]
    assert keyval.split("") == [""] and keyval.split("a,") == ["a", ""]


# An item that starts with a comma is ambiguous after another ("a" then ",b" reads "a," then "b"), in
# QEMU as here: option values never start with one.
ITEMS = st.text(min_size=1).filter(lambda t: not t.startswith(","))


@given(st.lists(ITEMS, min_size=1, max_size=5))
def test_escaped_items_split_back(items: list[str]) -> None:
    assert keyval.split(",".join(keyval.escape(item) for item in items)) == items
