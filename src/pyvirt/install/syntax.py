"""virt-install's option-value syntax: ``first,key=value,key2="a,b"`` into ordered pairs.

A value without ``key=`` takes the option's first key (``--disk /p`` is ``path=/p``, ``--memory 1024``
is ``memory=1024``); a later bare word is a flag set to ``on`` (``--boot uefi,hd``: ``uefi=on``), as
virt-install reads them. Quotes (single or double) keep commas inside a value. Pure: the CLI splits
with it, the daemon checks the keys it receives.
"""

from __future__ import annotations

from pyvirt.errors import InvalidArgument


def _split_commas(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    for char in text:
        if quote:
            if char == quote:
                quote = ""
            else:
                current.append(char)
        elif char in "\"'":
            quote = char
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if quote:
        raise InvalidArgument(f"unterminated quote in '{text}'")
    parts.append("".join(current))
    return parts


def split(option: str, text: str, first_key: str) -> dict[str, str]:
    """``--OPTION TEXT`` as {key: value}, in the order given; a repeated key is refused by name."""
    result: dict[str, str] = {}
    for index, part in enumerate(_split_commas(text)):
        if not part and index == 0 and first_key:
            continue
        if "=" in part:
            key, value = part.split("=", 1)
        elif index == 0 and first_key:
            key, value = first_key, part
        else:
            key, value = part, "on"
        if not key:
            raise InvalidArgument(f"--{option} {text}: an empty option name before '='")
        if key in result:
            raise InvalidArgument(f"--{option} {text}: '{key}' is given twice")
        result[key] = value
    return result


def boolean(option: str, key: str, value: str) -> bool:
    """virt-install's booleans: on/yes/true/1 and off/no/false/0."""
    low = value.lower()
    if low in ("on", "yes", "true", "1"):
        return True
    if low in ("off", "no", "false", "0"):
        return False
    raise InvalidArgument(f"--{option} {key}={value}: expected on or off")
