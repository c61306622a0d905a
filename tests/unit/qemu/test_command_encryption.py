"""Encrypted disks on QEMU's command line: the master key object, each disk's passphrase only as
ciphertext under it, before the disk's nodes, and the format node's LUKS options."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from pyvirt.conf.domain import Domain
from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.daemon.disk_secrets import seal
from pyvirt.errors import UnsupportedConfig, XMLError
from pyvirt.qemu.command import RuntimeContext, build_argv

MINIMAL = Path(__file__).resolve().parents[2] / "data" / "domain" / "minimal.xml"
UUID = "f52a81b2-424e-490c-823d-6bd4235bc572"


def disk(fmt: str = "qcow2", where: str = "disk", secret: str = f"uuid='{UUID}'") -> str:
    enc = f"<encryption format='luks'><secret type='passphrase' {secret}/></encryption>"
    source = f"<source file='/img/a.{fmt}'>{enc}</source>" if where == "source" else "<source file='/img/a'/>"
    return (
        f"<disk type='file' device='disk'><driver name='qemu' type='{fmt}'/>{source}"
        f"<target dev='vdb' bus='virtio'/>{enc if where == 'disk' else ''}</disk>"
    )


def dom_of(devices: str) -> Domain:
    text = MINIMAL.read_text()
    return load_domain_xml(text.replace("</domain>", f"<devices>{devices}</devices></domain>"))


def objects(argv: list[str]) -> list[dict[str, object]]:
    return [json.loads(argv[i + 1]) for i, arg in enumerate(argv) if arg in ("-object", "-blockdev")]


def test_passphrase_goes_only_encrypted_with_the_master_key(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    dom = dom_of(disk())
    key_path, sealed = seal({0: b"the passphrase"}, tmp_path, None)
    assert key_path == str(tmp_path / "master-key.aes")
    argv = build_argv(
        dom, RuntimeContext(accel="tcg", monitor_path="/m", master_key_path=key_path, disk_secrets=sealed)
    )
    assert b"the passphrase" not in " ".join(argv).encode()
    objs = objects(argv)
    master = objs.index({"qom-type": "secret", "id": "masterKey0", "format": "raw", "file": key_path})
    secret = next(o for o in objs if o.get("id") == "pyvirt-1-encryption-secret0")
    fmt = next(o for o in objs if o.get("node-name") == "pyvirt-1-format")
    assert master < objs.index(secret) < objs.index(fmt)  # each defined before it is used
    assert fmt["encrypt"] == {"format": "luks", "key-secret": "pyvirt-1-encryption-secret0"}
    assert (secret["keyid"], secret["format"]) == ("masterKey0", "base64")
    # QEMU's way back: AES-256-CBC with the key file and the IV, PKCS#7 padding
    key = Path(key_path).read_bytes()
    assert len(key) == 32 and oct(Path(key_path).stat().st_mode & 0o777) == "0o600"
    decryptor = Cipher(algorithms.AES(key), modes.CBC(base64.b64decode(str(secret["iv"])))).decryptor()
    padded = decryptor.update(base64.b64decode(str(secret["data"]))) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    assert unpadder.update(padded) + unpadder.finalize() == b"the passphrase"
    # a second start: a new key (the old file replaced), a new IV
    again_path, again = seal({0: b"the passphrase"}, tmp_path, None)
    assert Path(again_path).read_bytes() != key and again[0] != sealed[0]


def test_a_raw_luks_volume_uses_qemus_luks_driver(tmp_path: Path) -> None:
    key_path, sealed = seal({0: b"x"}, tmp_path, None)
    argv = build_argv(
        dom_of(disk("raw")),
        RuntimeContext(accel="tcg", monitor_path="/m", master_key_path=key_path, disk_secrets=sealed),
    )
    fmt = next(o for o in objects(argv) if o.get("node-name") == "pyvirt-1-format")
    assert (fmt["driver"], fmt["key-secret"]) == ("luks", "pyvirt-1-encryption-secret0")


def test_without_its_secret_an_encrypted_disk_is_not_built() -> None:
    with pytest.raises(UnsupportedConfig, match="disk 'vdb' is encrypted"):
        build_argv(dom_of(disk()), RuntimeContext(accel="tcg", monitor_path="/m"))
    assert seal({}, Path("/nonexistent"), None) == (None, {})


@pytest.mark.parametrize("where", ["disk", "source"])
@pytest.mark.parametrize("secret", [f"uuid='{UUID}'", "usage='/img/a.qcow2'"])
def test_encryption_written_back_where_it_was_found(where: str, secret: str) -> None:
    out = format_domain(dom_of(disk(where=where, secret=secret)))
    enc = f"<encryption format='luks'>\n          <secret type='passphrase' {secret}/>"
    if where == "source":
        assert "<source file='/img/a.qcow2'>\n        <encryption format='luks'>" in out
    else:
        assert "<target dev='vdb' bus='virtio'/>\n      <encryption format='luks'>" in out
    assert enc.replace("          ", "        " if where == "disk" else "          ") in out
    assert format_domain(load_domain_xml(out)) == out


@pytest.mark.parametrize(
    ("devices", "error", "words"),
    [
        (disk("vmdk"), UnsupportedConfig, "format 'vmdk' cannot be LUKS-encrypted"),
        (disk().replace("format='luks'", "format='qcow'"), UnsupportedConfig, "encryption format 'qcow'"),
        (disk().replace("type='passphrase'", "type='volume'"), UnsupportedConfig, "secret type volume"),
        (disk(secret=""), XMLError, "one of the attributes 'uuid' and 'usage'"),
        (disk(secret=f"uuid='{UUID}' usage='/x'"), XMLError, "one of the attributes 'uuid' and 'usage'"),
        (disk(secret="uuid='nope'"), XMLError, "malformed secret uuid"),
        (
            disk().replace("</encryption>", "<cipher name='aes' size='256'/></encryption>"),
            UnsupportedConfig,
            "cipher",
        ),
        (
            disk(where="source").replace("</disk>", "<encryption format='luks'/></disk>"),
            XMLError,
            "an <encryption> definition already found",
        ),
    ],
)
def test_bad_encryption_is_refused_by_name(devices: str, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        dom_of(devices)
