"""Strict request checks: unknown fields, missing fields and wrong types are refused by name."""

from __future__ import annotations

import pytest

from pyvirt.api.table import BY_NAME
from pyvirt.api.validate import check_body, check_query
from pyvirt.errors import InvalidArgument


def refused(action: str, body: object) -> str:
    with pytest.raises(InvalidArgument) as err:
        check_body(BY_NAME[action], body)
    return str(err.value)


def test_valid_bodies_pass_through() -> None:
    body = {"xml": "<domain/>", "start": True, "paused": False}
    assert check_body(BY_NAME["domain.define"], body) == body
    nested = {"xml": "<volume/>", "input": {"pool": "p", "name": "v"}}
    assert check_body(BY_NAME["volume.create"], nested) == nested
    assert check_body(BY_NAME["domain.start"], None) == {}
    assert check_body(BY_NAME["domain.shutdown"], {}) == {}


def test_unknown_field_named() -> None:
    assert "unknown field 'startt'" in refused("domain.define", {"xml": "x", "startt": True})
    assert "unknown field 'input.path'" in refused(
        "volume.create", {"xml": "x", "input": {"pool": "p", "name": "v", "path": "/x"}}
    )
    assert "unknown field 'force'" in refused("domain.shutdown", {"force": True})


def test_missing_field_named() -> None:
    assert "missing field 'xml'" in refused("network.define", {"start": True})
    assert "missing field 'enabled'" in refused("pool.autostart", {})
    assert "missing field 'input.name'" in refused("volume.create", {"xml": "x", "input": {"pool": "p"}})


def test_wrong_types_named() -> None:
    assert "field 'capacity' must be an integer, not a string" in refused("volume.resize", {"capacity": "1G"})
    assert "field 'capacity' must be an integer, not a boolean" in refused(
        "volume.resize", {"capacity": True}
    )
    assert "field 'paused' must be a boolean, not a number" in refused("domain.start", {"paused": 1})
    assert "field 'state' must be one of 'up', 'down', not 'sideways'" in refused(
        "domain.set_link", {"state": "sideways"}
    )
    assert "field 'type'" in refused("domain.attach_interface", {"type": "direct"})
    assert "the request body must be a JSON object" in refused("domain.define", ["x"])
    assert "field 'input' must be a JSON object" in refused("volume.create", {"xml": "x", "input": "p/v"})


def test_query_parsed_and_checked() -> None:
    xml = BY_NAME["domain.xml"]
    expected = {"inactive": True, "security_info": False, "migratable": False}
    assert check_query(xml, {"inactive": "1"}) == expected
    assert check_query(BY_NAME["volume.download"], {"offset": "512"}) == {
        "offset": 512,
        "length": 0,
        "sparse": False,
    }
    assert check_query(BY_NAME["network.leases"], {}) == {"mac": None}
    with pytest.raises(InvalidArgument, match="unknown query parameter 'inactiv'"):
        check_query(xml, {"inactiv": "1"})
    with pytest.raises(InvalidArgument, match="'inactive' must be a boolean"):
        check_query(xml, {"inactive": "maybe"})
    with pytest.raises(InvalidArgument, match="'offset' must be a non-negative integer, not '-1'"):
        check_query(BY_NAME["volume.upload"], {"offset": "-1"})
    with pytest.raises(InvalidArgument, match="missing query parameter 'path'"):
        check_query(BY_NAME["volume.find"], {})
