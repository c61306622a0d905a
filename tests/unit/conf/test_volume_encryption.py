"""A volume's ``<target><encryption format='luks'>``: taken for qcow2 and raw (a LUKS container) with its
secret and the ``<cipher>``/``<ivgen>`` a new image gets; bad ones refused by name."""

from __future__ import annotations

import pytest

from pyvirt.conf.disk_encryption import cipher_nodes
from pyvirt.conf.storage import parse_volume
from pyvirt.conf.xmlutil import serialize, x
from pyvirt.errors import UnsupportedConfig, XMLError

ENC = (
    "<encryption format='luks'><secret type='passphrase' usage='/var/lib/pyvirt/images/a.qcow2'/>"
    "</encryption>"
)


def volume(fmt: str, enc: str = ENC) -> str:
    target = f"<target><format type='{fmt}'/>{enc}</target>"
    return f"<volume><name>a</name><capacity>1048576</capacity>{target}</volume>"


def test_a_qcow2_volume_takes_its_secret() -> None:
    vol = parse_volume(volume("qcow2"))
    assert vol.encryption is not None
    assert (vol.encryption.format, vol.encryption.secret_usage) == ("luks", "/var/lib/pyvirt/images/a.qcow2")


def test_a_raw_volume_is_a_luks_container_with_the_cipher_named() -> None:
    cipher = "<cipher name='aes' size='128' mode='cbc' hash='sha1'/><ivgen name='essiv' hash='sha256'/>"
    vol = parse_volume(volume("raw", ENC.replace("</encryption>", cipher + "</encryption>")))
    assert vol.encryption is not None and vol.encryption.cipher is not None
    assert vol.encryption.cipher.qemu_options() == {
        "cipher-alg": "aes-128",
        "cipher-mode": "cbc",
        "hash-alg": "sha1",
        "ivgen-alg": "essiv",
        "ivgen-hash-alg": "sha256",
    }
    first, second = cipher.split("/>", 1)
    expected = f"<e>\n  {first}/>\n  {second}\n</e>\n"
    assert serialize(x("e").add(*cipher_nodes(vol.encryption.cipher))) == expected
    plain = parse_volume(volume("raw"))
    assert plain.encryption is not None and plain.encryption.cipher is None


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        (volume("qcow2", ENC.replace("luks", "qcow")), UnsupportedConfig, "encryption format 'qcow'"),
        (volume("qcow2", "<encryption format='luks'/>"), XMLError, "exactly one <secret"),
        (
            volume("raw", ENC.replace("</encryption>", "<ivgen name='plain'/></encryption>")),
            XMLError,
            "<cipher>",
        ),
        (volume("raw", ENC.replace("</encryption>", "<cipher name='aes'/></encryption>")), XMLError, "size"),
        (
            volume(
                "raw", ENC.replace("</encryption>", "<cipher name='aes' size='256' key='x'/></encryption>")
            ),
            UnsupportedConfig,
            "key",
        ),
    ],
)
def test_what_cannot_be_made_is_refused_by_name(text: str, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        parse_volume(text)
