"""NBD over TLS on the loopback for tests: x509 credentials with QEMU's file names, and qemu-nbd
serving an image with them (conf.nbd_tls is the client side)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyvirt import pki
from pyvirt.qemu.graphics import free_port
from tests.support.nbd import qemu_nbd

SERVER_NAME = "nbd.test"  # the name the server's certificate carries (a disk's tlsHostname)


def credentials(ca_dir: Path, server_dir: Path, client_dir: Path) -> None:
    """QEMU's file names for a CA, a server certificate for SERVER_NAME and a client certificate."""
    pki.init_ca(ca_dir)
    for directory in (server_dir, client_dir):
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copy(ca_dir / "cacert.pem", directory / "ca-cert.pem")
    pki.issue_server(ca_dir, [SERVER_NAME], out_dir=server_dir)
    (server_dir / "servercert.pem").rename(server_dir / "server-cert.pem")
    (server_dir / "serverkey.pem").rename(server_dir / "server-key.pem")
    pki.issue_client(ca_dir, "pyvirt-nbd-client", out_dir=client_dir)
    (client_dir / "clientcert.pem").rename(client_dir / "client-cert.pem")
    (client_dir / "clientkey.pem").rename(client_dir / "client-key.pem")


@contextmanager
def serve(
    server_dir: Path, image: Path, fmt: str, export: str, *, readonly: bool = False, clients: int = 1
) -> Iterator[int]:
    """qemu-nbd serving ``image`` over TLS on the loopback to ``clients`` clients at once (read-only:
    several may share it); yields its port."""
    port = free_port("127.0.0.1", 10900)
    argv = [
        "--object",
        f"tls-creds-x509,id=tls0,dir={server_dir},endpoint=server,verify-peer=on",
        "--tls-creds",
        "tls0",
        "-f",
        fmt,
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "-x",
        export,
        "--persistent",
        *(["--read-only"] if readonly else []),
        f"--shared={clients}",
        str(image),
    ]
    with qemu_nbd(*argv, port=port):
        yield port
