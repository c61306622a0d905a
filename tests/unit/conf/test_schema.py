"""Every document pyvirt writes is valid against libvirt's own RELAX NG schema (virt-xml-validate)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml, parse_domain

DATA = Path(__file__).resolve().parents[2] / "data" / "domain"
DOCS = sorted(p.name for p in DATA.glob("*.xml"))

pytestmark = pytest.mark.skipif(
    shutil.which("virt-xml-validate") is None or shutil.which("xmllint") is None,
    reason="virt-xml-validate (libvirt-clients) and xmllint (libxml2-utils) are needed",
)


def validate(path: Path) -> None:
    result = subprocess.run(
        ["virt-xml-validate", str(path), "domain"], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", DOCS)
def test_corpus_input_is_valid_libvirt_xml(name: str) -> None:
    validate(DATA / name)


@pytest.mark.parametrize("name", DOCS)
@pytest.mark.parametrize("live", [False, True])
def test_formatted_output_is_valid_libvirt_xml(name: str, live: bool, tmp_path: Path) -> None:
    text = (DATA / name).read_text()
    dom = parse_domain(text, live=True) if name.startswith("live-") else load_domain_xml(text)
    out = tmp_path / name
    out.write_text(format_domain(dom, live=live))
    validate(out)
