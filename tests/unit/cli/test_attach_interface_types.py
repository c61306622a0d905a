"""attach-interface's types: those virsh 9.0 makes no XML for (ethernet, the socket types...) are refused
in its words before anything reaches the daemon; virsh itself (its test driver, no daemon) is the oracle
where it is installed."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pyvirt.cli.hotplug import NO_ATTACH_TYPES, check_interface_type
from pyvirt.errors import InvalidArgument


@pytest.mark.parametrize("kind", NO_ATTACH_TYPES)
def test_types_virsh_has_no_xml_for_are_refused_in_its_words(kind: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_interface_type(kind)
    assert str(err.value) == f"No support for {kind} in command 'attach-interface'"
    virsh = shutil.which("virsh")
    if virsh is None:
        return  # the oracle is optional: pyvirt's refusal is checked above
    oracle = subprocess.run(
        [virsh, "-c", "test:///default", "attach-interface", "test", kind, "src", "--print-xml"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert oracle.returncode == 1 and str(err.value) in oracle.stderr, oracle.stderr


@pytest.mark.parametrize("kind", ["network", "bridge", "user"])
def test_types_attach_interface_plugs_pass(kind: str) -> None:
    check_interface_type(kind)  # the daemon checks its source; 'user' is pyvirt's addition to virsh
