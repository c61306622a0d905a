"""send-key's codesets (pyvirt.qemu.keymaps): every codeset reaches the same qnum numbers QEMU takes."""

from __future__ import annotations

import pytest

from pyvirt.errors import InvalidArgument
from pyvirt.qemu.keymaps import KEYS, to_qnum


def test_the_same_key_in_every_codeset() -> None:
    # The letter A: Linux 30, set 1 0x1e, USB usage 0x04, VK_A 0x41, qnum 0x1e.
    for codeset, code in (("linux", "30"), ("xt", "0x1e"), ("atset1", "30"), ("usb", "4"), ("win32", "0x41")):
        assert to_qnum(codeset, [code]) == [0x1E], codeset
    assert to_qnum("qnum", ["0x1e"]) == to_qnum("rfb", ["30"]) == [0x1E]
    assert to_qnum("linux", ["KEY_A"]) == to_qnum("win32", ["VK_A"]) == [0x1E]


def test_extended_keys_fold_into_qnum() -> None:
    # e0-prefixed scancodes become 0x80 | code: Delete e0 53 → 0xd3, right Ctrl e0 1d → 0x9d.
    assert to_qnum("linux", ["KEY_LEFTCTRL", "KEY_LEFTALT", "KEY_DELETE"]) == [0x1D, 0x38, 0xD3]
    assert to_qnum("atset1", ["0xe01d"]) == [0x9D]
    assert to_qnum("usb", ["0xe4"]) == [0x9D]
    assert to_qnum("linux", ["KEY_PAUSE"]) == [0xC6]


def test_numbers_in_any_base() -> None:
    assert to_qnum("linux", ["28", "0x1c", "034"]) == [0x1C, 0x1C, 0x1C]


def test_the_table_is_consistent() -> None:
    for codeset in ("linux", "usb", "win32"):
        seen: dict[int, str] = {}
        for key in KEYS:
            code = {"linux": key.linux, "usb": key.usb, "win32": key.win32}[codeset]
            if code is not None and codeset == "linux":
                assert code not in seen, f"{key.name} and {seen[code]} share linux code {code}"
                seen[code] = key.name
    qnums = [k.qnum for k in KEYS]
    assert len(qnums) == len(set(qnums)), "two keys with one qnum"
    assert all(0 < q <= 0xFF for q in qnums)


@pytest.mark.parametrize(
    ("codeset", "keys", "message"),
    [
        ("linux", ["KEY_BOGUS"], "invalid keycode: 'KEY_BOGUS'"),
        ("usb", ["KEY_A"], "invalid keycode: 'KEY_A'"),  # names belong to the linux and win32 codesets
        ("linux", ["0x10000"], "invalid keycode: '0x10000'"),
        ("klingon", ["1"], "unknown codeset: 'klingon'"),
        ("atset2", ["0x1c"], "codeset 'atset2' is not supported by pyvirt"),
        ("linux", ["KEY_A"] * 17, "too many keycodes"),
        ("linux", ["250"], "cannot translate keycode 250 of linux codeset to qnum keycode"),
        ("qnum", ["0x100"], "qnum codes are 1 to 0xff"),
        ("linux", [], "no keycode given"),
    ],
)
def test_bad_keys_are_named(codeset: str, keys: list[str], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
        to_qnum(codeset, keys)
