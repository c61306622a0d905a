"""``pyvirt pki``: make the CA and the certificates ``qemu+tls://`` needs.

    pyvirt pki init                                   CA in the default directory
    pyvirt pki issue-server --hostname host.example   servercert.pem for pyvirtd --listen-tls
    pyvirt pki issue-client --cn admin [--readonly]   clientcert.pem for a qemu+tls:// client
    pyvirt pki show [FILE...]                         subject, issuer, validity, names

The default directory is ``/etc/pki/pyvirt`` for root (under ``$PYVIRT_ROOT``) and ``~/.pki/pyvirt``
for other users; ``--dir`` picks another, ``--out`` writes the issued files (and a copy of the CA
certificate) elsewhere, e.g. to copy to a client machine.
"""

from __future__ import annotations

import socket
import sys

from pyvirt import pki

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from pyvirt.cli.main import GlobalOptions


def main(argv: list[str], opts: GlobalOptions | None = None) -> int:
    """Run one ``pyvirt pki`` action (its options are declared in :mod:`pyvirt.cli.commands`)."""
    from pyvirt.cli.toolargs import tool_parser

    parser = tool_parser("pki", dest={"COMMAND": "action", "file": "files"})
    args = parser.parse_args(argv)
    directory: Path = args.dir or pki.default_dir()
    if args.action == "init":
        cn = args.cn or f"pyvirt CA on {socket.gethostname()}"
        issued = pki.init_ca(directory, cn=cn, days=args.days or pki.CA_DAYS, force=args.force)
        print(f"CA certificate {issued.cert}\nCA key         {issued.key} (keep it private)")
    elif args.action == "issue-server":
        names = list(dict.fromkeys([*args.hostname, *pki.default_server_names()]))
        issued = pki.issue_server(directory, names, out_dir=args.out, days=args.days or pki.CERT_DAYS)
        print(f"server certificate {issued.cert}\nserver key         {issued.key}\nnames: {', '.join(names)}")
    elif args.action == "issue-client":
        issued = pki.issue_client(
            directory,
            args.cn or socket.gethostname(),
            out_dir=args.out,
            days=args.days or pki.CERT_DAYS,
            readonly=args.readonly,
        )
        print(f"client certificate {issued.cert}\nclient key         {issued.key}")
    else:
        files = args.files or sorted(directory.glob("*cert.pem"))
        if not files:
            sys.stderr.write(f"error: no certificates in {directory}\n")
            return 1
        for path in files:
            for key, value in pki.describe(path).items():
                print(f"{key + ':':12} {value}")
            print()
    return 0
