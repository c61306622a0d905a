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

import argparse
import socket
import sys
from pathlib import Path

from pyvirt import pki


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="pyvirt pki", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dir", type=Path, help=f"CA directory (default: {pki.default_dir()})")
        p.add_argument("--days", type=int, help="validity in days")

    p_init = sub.add_parser("init", help="create the certificate authority")
    common(p_init)
    p_init.add_argument("--cn", default=f"pyvirt CA on {socket.gethostname()}", help="the CA's name")
    p_init.add_argument("--force", action="store_true", help="replace an existing CA")

    p_server = sub.add_parser("issue-server", help="issue the daemon's certificate")
    common(p_server)
    p_server.add_argument(
        "--hostname",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name or address clients use (repeatable; this host's names, localhost, "
        "127.0.0.1 and ::1 are always included)",
    )
    p_server.add_argument("--out", type=Path, help="write the files here instead of --dir")

    p_client = sub.add_parser("issue-client", help="issue a client certificate")
    common(p_client)
    p_client.add_argument("--cn", default=socket.gethostname(), help="the client's name")
    p_client.add_argument("--readonly", action="store_true", help="the daemon serves this client read-only")
    p_client.add_argument("--out", type=Path, help="write the files here instead of --dir")

    p_show = sub.add_parser("show", help="describe certificates")
    p_show.add_argument("--dir", type=Path, help="directory whose certificates to show")
    p_show.add_argument("files", nargs="*", type=Path)

    args = parser.parse_args(argv)
    directory: Path = args.dir or pki.default_dir()
    if args.action == "init":
        issued = pki.init_ca(directory, cn=args.cn, days=args.days or pki.CA_DAYS, force=args.force)
        print(f"CA certificate {issued.cert}\nCA key         {issued.key} (keep it private)")
    elif args.action == "issue-server":
        names = list(dict.fromkeys([*args.hostname, *pki.default_server_names()]))
        issued = pki.issue_server(directory, names, out_dir=args.out, days=args.days or pki.CERT_DAYS)
        print(f"server certificate {issued.cert}\nserver key         {issued.key}\nnames: {', '.join(names)}")
    elif args.action == "issue-client":
        issued = pki.issue_client(
            directory, args.cn, out_dir=args.out, days=args.days or pki.CERT_DAYS, readonly=args.readonly
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
