"""A volume's ``<target><encryption format='luks'>``: taken for qcow2 with its secret, refused by name
otherwise."""

from __future__ import annotations

import pytest

from pyvirt.conf.storage import parse_volume
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


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        (volume("raw"), UnsupportedConfig, "does not support <encryption>"),
        (volume("qcow2", ENC.replace("luks", "qcow")), UnsupportedConfig, "encryption format 'qcow'"),
        (volume("qcow2", "<encryption format='luks'/>"), XMLError, "exactly one <secret"),
        (
            volume("qcow2", ENC.replace("</encryption>", "<cipher name='twofish' size='256'/></encryption>")),
            UnsupportedConfig,
            "cipher",
        ),
    ],
)
def test_what_cannot_be_made_is_refused_by_name(text: str, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        parse_volume(text)
