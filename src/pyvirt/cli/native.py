"""domxml-to-native (what the daemon would run for a domain XML) and domxml-from-native (the reverse)."""

from __future__ import annotations

from pyvirt.cli.domain import _read_file
from pyvirt.cli.output import emit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions


def cmd_domxml_to_native(opts: GlobalOptions, a: Parsed) -> int:
    native = opts.connect().domxml_to_native(a.text("format"), _read_file(a.text("xml")))
    emit(native["text"])
    return 0


def cmd_domxml_from_native(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.conf.from_native import domxml_from_native

    emit(domxml_from_native(a.text("format"), _read_file(a.text("config"))))
    return 0
