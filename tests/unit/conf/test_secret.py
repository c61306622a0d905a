"""libvirt's secret XML: parsed strictly, formatted as libvirt 9.0 formats it."""

from __future__ import annotations

import uuid

import pytest

from pyvirt.conf.secret import format_secret, parse_secret
from pyvirt.errors import UnsupportedConfig, XMLError


@pytest.mark.parametrize(
    ("kind", "element"),
    [("volume", "volume"), ("ceph", "name"), ("iscsi", "target"), ("tls", "name"), ("vtpm", "name")],
)
def test_every_usage_type_round_trips(kind: str, element: str) -> None:
    text = (
        "<secret ephemeral='yes' private='no'>\n"
        "  <uuid>f52a81b2-424e-490c-823d-6bd4235bc572</uuid>\n"
        "  <description>a &lt;description&gt;</description>\n"
        f"  <usage type='{kind}'>\n    <{element}>what/it &amp; is</{element}>\n  </usage>\n"
        "</secret>\n"
    )
    secret = parse_secret(text)
    assert (secret.usage_type, secret.usage_id, secret.ephemeral, secret.private) == (
        kind,
        "what/it & is",
        True,
        False,
    )
    assert secret.usage == f"{kind} what/it & is"
    assert format_secret(secret) == text


def test_defaults_a_uuid_and_no_usage() -> None:
    secret = parse_secret("<secret/>")
    assert uuid.UUID(secret.uuid) and secret.usage == "Unused"
    assert format_secret(secret) == (
        f"<secret ephemeral='no' private='no'>\n  <uuid>{secret.uuid}</uuid>\n</secret>\n"
    )
    assert parse_secret("<secret><uuid>F52A81B2424E490C823D6BD4235BC572</uuid></secret>").uuid == (
        "f52a81b2-424e-490c-823d-6bd4235bc572"
    )


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        ("<secrets/>", XMLError, "expected a <secret> root element"),
        ("<secret private='maybe'/>", UnsupportedConfig, "'private' = 'maybe'"),
        ("<secret><uuid>nope</uuid></secret>", XMLError, "malformed uuid element"),
        ("<secret><usage/></secret>", XMLError, "unknown secret usage type"),
        ("<secret><usage type='nfs'/></secret>", UnsupportedConfig, "unknown secret usage type nfs"),
        ("<secret><usage type='ceph'><volume>x</volume></usage></secret>", XMLError, "name is missing"),
        ("<secret><usage type='iscsi'><target/></usage></secret>", XMLError, "target is missing"),
        ("<secret><value>x</value></secret>", UnsupportedConfig, "element 'value' is not supported"),
    ],
)
def test_bad_documents_are_refused_by_name(text: str, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        parse_secret(text)
