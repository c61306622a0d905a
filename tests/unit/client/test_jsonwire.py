"""The client's JSON codec agrees with the json package, and refuses what json.loads refuses."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvirt.client import jsonwire

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_round_trip_matches_json(value: object) -> None:
    encoded = jsonwire.dumps(value)
    assert encoded == json.dumps(value)
    assert jsonwire.loads(encoded) == value
    assert jsonwire.loads(encoded.encode()) == value


def test_surrounding_whitespace_and_constants() -> None:
    assert jsonwire.loads(b' \n{"a": [1, 2.5, "\\u00e9", null]}\r\n') == {"a": [1, 2.5, "é", None]}
    assert math.isnan(jsonwire.loads("NaN"))
    assert jsonwire.loads("-Infinity") == -math.inf


@pytest.mark.parametrize("text", ["", "{", '{"a": }', "[1,]", '{"a": 1} x', "[1] [2]", '"\x01"', "tru"])
def test_malformed_is_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)  # the reference refuses it too
    with pytest.raises(ValueError):
        jsonwire.loads(text)


def test_unserialisable_is_type_error() -> None:
    with pytest.raises(TypeError, match="set"):
        jsonwire.dumps({"a": {1, 2}})
