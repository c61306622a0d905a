"""virsh's edit loop: the XML in $VISUAL/$EDITOR, redefined if changed; on an error, offer to retry."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable

from pyvirt.cli.output import message
from pyvirt.errors import InvalidArgument, PyvirtError


def edit_xml(original: str, what: str, define: Callable[[str], object], *, success: str | None = None) -> int:
    """Edit ``original``; ``define`` the result. ``what`` names the object in messages; ``success``
    replaces the message of success."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w", suffix=".xml", prefix="pyvirt-edit-", delete=False) as fh:
        fh.write(original)
    try:
        while True:
            if subprocess.call(["sh", "-c", f'{editor} "$1"', "editor", fh.name]) != 0:
                raise InvalidArgument(f"editor '{editor}' failed")
            with open(fh.name, encoding="utf-8") as edited_fh:
                edited = edited_fh.read()
            if edited == original:
                message(f"{what} XML configuration not changed.")
                return 0
            try:
                define(edited)
            except PyvirtError as err:
                sys.stderr.write(f"error: {err}\n")
                if not _ask_retry():
                    sys.stderr.write(f"error: {what} XML configuration left unchanged\n")
                    return 1
                continue
            message(success or f"{what} XML configuration edited.")
            return 0
    finally:
        os.unlink(fh.name)


def _ask_retry() -> bool:
    if not sys.stdin.isatty():
        return False
    while True:
        sys.stdout.write("Failed. Try again? [y,n,i,f,?]: ")
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer in ("y", ""):
            return True
        if answer in ("n", "i"):
            return False
        sys.stdout.write("y - yes, start editor again\nn - no, throw away my changes\n")
