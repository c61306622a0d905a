"""Key codes for ``send-key``: virsh's codesets translated to QEMU's ``qnum`` numbers (pure data).

One row a key: its Linux name and code (``linux/input-event-codes.h``), its scancode in the PC's
set 1 (``atset1``; an ``0xe0``-prefixed one written ``0xe0XX``), its USB HID usage and its Windows
virtual-key name and code (the columns of the keycodemapdb table libvirt and QEMU generate theirs
from). QEMU's ``qnum`` is derived from set 1: the code itself, or ``0x80 | XX`` for ``0xe0XX``.
Codesets: ``linux``, ``xt`` and ``atset1`` (the same scancodes), ``usb``, ``win32``, ``qnum``
(``rfb``, the same numbers); the other codesets libvirt knows (``atset2``, ``atset3``, ``os_x``,
``xt_kbd``) are refused by name. Keys are given by number (decimal or ``0x`` hex) or, in the linux
and win32 codesets, by name (``KEY_LEFTCTRL``, ``VK_RETURN``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyvirt.errors import InvalidArgument

# name linux set1 usb win32-name win32 ("-": none)
_TABLE = """
KEY_ESC 1 0x01 0x29 VK_ESCAPE 0x1b
KEY_1 2 0x02 0x1e VK_1 0x31
KEY_2 3 0x03 0x1f VK_2 0x32
KEY_3 4 0x04 0x20 VK_3 0x33
KEY_4 5 0x05 0x21 VK_4 0x34
KEY_5 6 0x06 0x22 VK_5 0x35
KEY_6 7 0x07 0x23 VK_6 0x36
KEY_7 8 0x08 0x24 VK_7 0x37
KEY_8 9 0x09 0x25 VK_8 0x38
KEY_9 10 0x0a 0x26 VK_9 0x39
KEY_0 11 0x0b 0x27 VK_0 0x30
KEY_MINUS 12 0x0c 0x2d VK_OEM_MINUS 0xbd
KEY_EQUAL 13 0x0d 0x2e VK_OEM_PLUS 0xbb
KEY_BACKSPACE 14 0x0e 0x2a VK_BACK 0x08
KEY_TAB 15 0x0f 0x2b VK_TAB 0x09
KEY_Q 16 0x10 0x14 VK_Q 0x51
KEY_W 17 0x11 0x1a VK_W 0x57
KEY_E 18 0x12 0x08 VK_E 0x45
KEY_R 19 0x13 0x15 VK_R 0x52
KEY_T 20 0x14 0x17 VK_T 0x54
KEY_Y 21 0x15 0x1c VK_Y 0x59
KEY_U 22 0x16 0x18 VK_U 0x55
KEY_I 23 0x17 0x0c VK_I 0x49
KEY_O 24 0x18 0x12 VK_O 0x4f
KEY_P 25 0x19 0x13 VK_P 0x50
KEY_LEFTBRACE 26 0x1a 0x2f VK_OEM_4 0xdb
KEY_RIGHTBRACE 27 0x1b 0x30 VK_OEM_6 0xdd
KEY_ENTER 28 0x1c 0x28 VK_RETURN 0x0d
KEY_LEFTCTRL 29 0x1d 0xe0 VK_LCONTROL 0xa2
KEY_A 30 0x1e 0x04 VK_A 0x41
KEY_S 31 0x1f 0x16 VK_S 0x53
KEY_D 32 0x20 0x07 VK_D 0x44
KEY_F 33 0x21 0x09 VK_F 0x46
KEY_G 34 0x22 0x0a VK_G 0x47
KEY_H 35 0x23 0x0b VK_H 0x48
KEY_J 36 0x24 0x0d VK_J 0x4a
KEY_K 37 0x25 0x0e VK_K 0x4b
KEY_L 38 0x26 0x0f VK_L 0x4c
KEY_SEMICOLON 39 0x27 0x33 VK_OEM_1 0xba
KEY_APOSTROPHE 40 0x28 0x34 VK_OEM_7 0xde
KEY_GRAVE 41 0x29 0x35 VK_OEM_3 0xc0
KEY_LEFTSHIFT 42 0x2a 0xe1 VK_LSHIFT 0xa0
KEY_BACKSLASH 43 0x2b 0x31 VK_OEM_5 0xdc
KEY_Z 44 0x2c 0x1d VK_Z 0x5a
KEY_X 45 0x2d 0x1b VK_X 0x58
KEY_C 46 0x2e 0x06 VK_C 0x43
KEY_V 47 0x2f 0x19 VK_V 0x56
KEY_B 48 0x30 0x05 VK_B 0x42
KEY_N 49 0x31 0x11 VK_N 0x4e
KEY_M 50 0x32 0x10 VK_M 0x4d
KEY_COMMA 51 0x33 0x36 VK_OEM_COMMA 0xbc
KEY_DOT 52 0x34 0x37 VK_OEM_PERIOD 0xbe
KEY_SLASH 53 0x35 0x38 VK_OEM_2 0xbf
KEY_RIGHTSHIFT 54 0x36 0xe5 VK_RSHIFT 0xa1
KEY_KPASTERISK 55 0x37 0x55 VK_MULTIPLY 0x6a
KEY_LEFTALT 56 0x38 0xe2 VK_LMENU 0xa4
KEY_SPACE 57 0x39 0x2c VK_SPACE 0x20
KEY_CAPSLOCK 58 0x3a 0x39 VK_CAPITAL 0x14
KEY_F1 59 0x3b 0x3a VK_F1 0x70
KEY_F2 60 0x3c 0x3b VK_F2 0x71
KEY_F3 61 0x3d 0x3c VK_F3 0x72
KEY_F4 62 0x3e 0x3d VK_F4 0x73
KEY_F5 63 0x3f 0x3e VK_F5 0x74
KEY_F6 64 0x40 0x3f VK_F6 0x75
KEY_F7 65 0x41 0x40 VK_F7 0x76
KEY_F8 66 0x42 0x41 VK_F8 0x77
KEY_F9 67 0x43 0x42 VK_F9 0x78
KEY_F10 68 0x44 0x43 VK_F10 0x79
KEY_NUMLOCK 69 0x45 0x53 VK_NUMLOCK 0x90
KEY_SCROLLLOCK 70 0x46 0x47 VK_SCROLL 0x91
KEY_KP7 71 0x47 0x5f VK_NUMPAD7 0x67
KEY_KP8 72 0x48 0x60 VK_NUMPAD8 0x68
KEY_KP9 73 0x49 0x61 VK_NUMPAD9 0x69
KEY_KPMINUS 74 0x4a 0x56 VK_SUBTRACT 0x6d
KEY_KP4 75 0x4b 0x5c VK_NUMPAD4 0x64
KEY_KP5 76 0x4c 0x5d VK_NUMPAD5 0x65
KEY_KP6 77 0x4d 0x5e VK_NUMPAD6 0x66
KEY_KPPLUS 78 0x4e 0x57 VK_ADD 0x6b
KEY_KP1 79 0x4f 0x59 VK_NUMPAD1 0x61
KEY_KP2 80 0x50 0x5a VK_NUMPAD2 0x62
KEY_KP3 81 0x51 0x5b VK_NUMPAD3 0x63
KEY_KP0 82 0x52 0x62 VK_NUMPAD0 0x60
KEY_KPDOT 83 0x53 0x63 VK_DECIMAL 0x6e
KEY_102ND 86 0x56 0x64 VK_OEM_102 0xe2
KEY_F11 87 0x57 0x44 VK_F11 0x7a
KEY_F12 88 0x58 0x45 VK_F12 0x7b
KEY_KPENTER 96 0xe01c 0x58 - -
KEY_RIGHTCTRL 97 0xe01d 0xe4 VK_RCONTROL 0xa3
KEY_KPSLASH 98 0xe035 0x54 VK_DIVIDE 0x6f
KEY_SYSRQ 99 0x54 0x46 VK_SNAPSHOT 0x2c
KEY_RIGHTALT 100 0xe038 0xe6 VK_RMENU 0xa5
KEY_HOME 102 0xe047 0x4a VK_HOME 0x24
KEY_UP 103 0xe048 0x52 VK_UP 0x26
KEY_PAGEUP 104 0xe049 0x4b VK_PRIOR 0x21
KEY_LEFT 105 0xe04b 0x50 VK_LEFT 0x25
KEY_RIGHT 106 0xe04d 0x4f VK_RIGHT 0x27
KEY_END 107 0xe04f 0x4d VK_END 0x23
KEY_DOWN 108 0xe050 0x51 VK_DOWN 0x28
KEY_PAGEDOWN 109 0xe051 0x4e VK_NEXT 0x22
KEY_INSERT 110 0xe052 0x49 VK_INSERT 0x2d
KEY_DELETE 111 0xe053 0x4c VK_DELETE 0x2e
KEY_MUTE 113 0xe020 0x7f VK_VOLUME_MUTE 0xad
KEY_VOLUMEDOWN 114 0xe02e 0x81 VK_VOLUME_DOWN 0xae
KEY_VOLUMEUP 115 0xe030 0x80 VK_VOLUME_UP 0xaf
KEY_POWER 116 0xe05e 0x66 - -
KEY_KPEQUAL 117 0x59 0x67 - -
KEY_PAUSE 119 0xe046 0x48 VK_PAUSE 0x13
KEY_KPCOMMA 121 0x7e 0x85 VK_SEPARATOR 0x6c
KEY_LEFTMETA 125 0xe05b 0xe3 VK_LWIN 0x5b
KEY_RIGHTMETA 126 0xe05c 0xe7 VK_RWIN 0x5c
KEY_COMPOSE 127 0xe05d 0x65 VK_APPS 0x5d
KEY_SLEEP 142 0xe05f - VK_SLEEP 0x5f
KEY_WAKEUP 143 0xe063 - - -
KEY_PRINT 210 0xe037 - - -
"""

CODESETS = ("linux", "xt", "atset1", "usb", "win32", "qnum", "rfb")
UNSUPPORTED_CODESETS = ("atset2", "atset3", "os_x", "xt_kbd")
MAX_KEYS = 16  # libvirt's VIR_DOMAIN_SEND_KEY_MAX_KEYS


@dataclass(frozen=True)
class Key:
    name: str
    linux: int
    set1: int
    usb: int | None
    win32_name: str | None
    win32: int | None

    @property
    def qnum(self) -> int:
        if self.name == "KEY_PAUSE":
            return 0xC6  # Pause is e1 1d 45 in set 1; QEMU numbers it as e0 46
        return 0x80 | (self.set1 & 0x7F) if self.set1 > 0xFF else self.set1


def _number(text: str) -> int | None:
    return None if text == "-" else int(text, 0)


def _load() -> list[Key]:
    keys = []
    for line in _TABLE.strip().splitlines():
        name, linux, set1, usb, win32_name, win32 = line.split()
        keys.append(
            Key(
                name,
                int(linux),
                int(set1, 0),
                _number(usb),
                None if win32_name == "-" else win32_name,
                _number(win32),
            )
        )
    return keys


KEYS = _load()


def _by(codeset: str) -> dict[int, Key]:
    """Code → key in ``codeset`` (the first key of a code several share)."""
    out: dict[int, Key] = {}
    for key in KEYS:
        code: int | None
        if codeset == "linux":
            code = key.linux
        elif codeset in ("xt", "atset1"):
            code = key.set1
        elif codeset == "usb":
            code = key.usb
        elif codeset == "win32":
            code = key.win32
        else:
            code = key.qnum
        if code is not None:
            out.setdefault(code, key)
    return out


def _parse_number(text: str) -> int | None:
    """virsh's numeric key code: decimal, 0x hex or 0 octal, at most 0xffff."""
    try:
        value = int(text, 0) if not (text.startswith("0") and text[1:].isdigit()) else int(text, 8)
    except ValueError:
        return None
    return value if 0 <= value <= 0xFFFF else None


def to_qnum(codeset: str, keycodes: list[str]) -> list[int]:
    """QEMU's qnum numbers of ``keycodes`` (numbers or names) given in ``codeset``."""
    if codeset in UNSUPPORTED_CODESETS:
        raise InvalidArgument(
            f"codeset '{codeset}' is not supported by pyvirt (it knows {', '.join(CODESETS)})"
        )
    if codeset not in CODESETS:
        raise InvalidArgument(f"unknown codeset: '{codeset}'")
    if not keycodes:
        raise InvalidArgument("no keycode given")
    if len(keycodes) > MAX_KEYS:
        raise InvalidArgument("too many keycodes")
    table = _by(codeset)
    names = {k.name: k for k in KEYS} if codeset == "linux" else {}
    if codeset == "win32":
        names = {k.win32_name: k for k in KEYS if k.win32_name}
    out = []
    for text in keycodes:
        number = _parse_number(text)
        key = names.get(text) if number is None else None
        if number is None and key is None:
            raise InvalidArgument(f"invalid keycode: '{text}'")
        if key is None:
            assert number is not None
            if codeset in ("qnum", "rfb"):
                if not 0 < number <= 0xFF:
                    raise InvalidArgument(f"invalid keycode: '{text}' (qnum codes are 1 to 0xff)")
                out.append(number)
                continue
            key = table.get(number)
            if key is None:
                raise InvalidArgument(
                    f"cannot translate keycode {number} of {codeset} codeset to qnum keycode"
                )
        out.append(key.qnum)
    return out
