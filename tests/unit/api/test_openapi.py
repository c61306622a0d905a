"""The OpenAPI document: valid by a real validator, generated from the table, committed as generated."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from openapi_spec_validator import validate

from pyvirt.api import docs, openapi
from pyvirt.api.table import ACTIONS

ROOT = Path(__file__).resolve().parents[3]
REGENERATE = (
    "regenerate with `python -m pyvirt.api.openapi > docs/openapi.json` and "
    "`python -m pyvirt.api.docs --write docs/API.md`"
)


def test_document_is_valid_openapi_31() -> None:
    document = openapi.document()
    assert document["openapi"].startswith("3.1")
    validate(document)  # type: ignore[arg-type]


def test_every_action_is_an_operation() -> None:
    paths = openapi.document()["paths"]
    operations = {op["operationId"] for methods in paths.values() for op in methods.values()}
    assert operations == {action.name for action in ACTIONS}


def test_committed_files_are_the_generated_ones() -> None:
    assert (ROOT / "docs/openapi.json").read_text() == openapi.render(), REGENERATE
    api_md = (ROOT / "docs/API.md").read_text()
    assert docs.splice(api_md) == api_md, REGENERATE


def test_schemas_accept_and_refuse() -> None:
    """The generated schemas say what the types say: closed objects, nullable fields, enums."""
    document = openapi.document()

    def check(name: str, value: object) -> None:
        schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
        jsonschema.validate(value, schema, cls=jsonschema.Draft202012Validator)

    check("LinkStateRequest", {"state": "up"})
    check("VolumeCreateRequest", {"xml": "<volume/>", "input": {"pool": "p", "name": "v"}})
    check("DomainDevices", {"disks": [], "interfaces": [], "vnc": None})
    for name, bad in (
        ("LinkStateRequest", {"state": "sideways"}),
        ("VolumeCreateRequest", {"xml": "<volume/>", "extra": 1}),
        ("ResizeRequest", {"capacity": "1G"}),
        ("DomainDefineRequest", {"start": True}),
    ):
        try:
            check(name, bad)
        except jsonschema.ValidationError:
            continue
        raise AssertionError(f"{name} accepted {json.dumps(bad)}")
