"""Remote transports: ``qemu+ssh://`` through ``ssh … pyvirt proxy``, and ``qemu+tls://``.

For ``qemu+ssh://[user@]host[:port]/MODE`` the client runs, like libvirt with virt-ssh-helper::

    ssh [-p PORT] [-i KEYFILE -o IdentitiesOnly=yes] [-T -o BatchMode=yes] [user@]host \\
        pyvirt proxy --mode MODE [--socket PATH] [--readonly]

on one end of a socketpair and speaks HTTP through it. Authentication is ssh's own. ``command=``
names the remote pyvirt when it is not on the remote PATH. Every stream (console, events) opens its
own ssh connection. When ssh fails, the error says which step did: reaching the host, the key, the
remote pyvirt, or the remote daemon.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
import tempfile

from pyvirt.client.transport import Transport
from pyvirt.errors import ConnectionFailed, InvalidArgument
from pyvirt.uri import URI

GREETING = b"pyvirt-proxy 1"


def ssh_argv(uri: URI, readonly: bool) -> list[str]:
    for what, value in (("host", uri.host), ("user", uri.user), ("keyfile", uri.params.get("keyfile"))):
        if value and value.startswith("-"):
            raise InvalidArgument(f"{what} '{value}' in URI '{uri.canonical()}' may not start with '-'")
    argv = ["ssh"]
    if uri.port:
        argv += ["-p", str(uri.port)]
    if uri.params.get("keyfile"):
        argv += ["-i", uri.params["keyfile"], "-o", "IdentitiesOnly=yes"]
    if uri.flag("no_verify"):
        argv += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
        argv += ["-o", "LogLevel=ERROR"]  # no "Permanently added ... to known hosts" on every call
    if uri.flag("no_tty"):
        argv += ["-o", "BatchMode=yes"]
    argv += ["-T", "-o", "ConnectTimeout=20", "-e", "none"]
    host = str(uri.host)
    argv.append(f"{uri.user}@{host}" if uri.user else host)
    argv.append("--")
    remote = [uri.params.get("command", "pyvirt"), "proxy", "--mode", uri.mode]
    if uri.params.get("socket"):
        remote += ["--socket", uri.params["socket"]]
    if readonly:
        remote.append("--readonly")
    argv.append(" ".join(shlex.quote(a) for a in remote))
    return argv


class SSHTransport(Transport):
    """A Transport whose socket is one end of a socketpair wired to an ssh process's stdio."""

    def __init__(self, sock: socket.socket, proc: subprocess.Popen[bytes], description: str) -> None:
        super().__init__(sock, description)
        self.proc = proc

    def close(self) -> None:
        super().close()
        # Every reply has been read by now: end ssh at once rather than wait for the remote side
        # to notice the end of input (a round trip the caller would pay for).
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def open_ssh(uri: URI, readonly: bool) -> Transport:
    ours, theirs = socket.socketpair()
    argv = ssh_argv(uri, readonly)
    # stderr goes to an unlinked file: nothing has to drain it, and it is there to explain a failure.
    errfile = tempfile.TemporaryFile()  # noqa: SIM115 - closed below on every path
    try:
        proc = subprocess.Popen(argv, stdin=theirs.fileno(), stdout=theirs.fileno(), stderr=errfile)
    except FileNotFoundError as err:
        ours.close()
        errfile.close()
        raise ConnectionFailed("cannot run 'ssh': install the openssh-client package") from err
    finally:
        theirs.close()
    transport = SSHTransport(ours, proc, uri.canonical())
    # The proxy greets with one line once it reached the daemon; ssh failures show up as EOF here.
    try:
        greeting = transport._recv_until(b"\n")
    except (ConnectionFailed, OSError):
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        errfile.seek(0)
        stderr = errfile.read().decode(errors="replace").strip()
        errfile.close()
        transport.sock.close()
        raise ConnectionFailed(explain_ssh_failure(uri, proc.returncode, stderr)) from None
    errfile.close()
    if greeting != GREETING:
        transport.close()
        raise ConnectionFailed(
            f"unexpected greeting from the remote command on {uri.host}: {greeting[:80]!r} "
            "(is 'pyvirt' there really pyvirt? a login script printing text also causes this)"
        )
    return transport


def explain_ssh_failure(uri: URI, code: int | None, stderr: str) -> str:
    """One sentence naming the failed step, then ssh's (or the remote command's) last words."""
    host = uri.host
    lines = [line for line in stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else f"ssh exited with status {code}"
    command = uri.params.get("command", "pyvirt")
    if "pyvirt proxy: cannot connect" in stderr:
        what = f"pyvirt on {host} cannot reach its daemon (is pyvirtd running there?)"
    elif "Could not resolve hostname" in stderr or "Name or service not known" in stderr:
        what = f"cannot resolve host name {host}"
    elif any(
        text in stderr
        for text in ("Connection refused", "No route to host", "timed out", "Network is unreachable")
    ):
        what = f"cannot reach {host}" + (f" on port {uri.port}" if uri.port else "") + " (is sshd running?)"
    elif "Permission denied" in stderr or "Too many authentication failures" in stderr:
        key = uri.params.get("keyfile")
        user = uri.user or os.environ.get("USER", "the current user")
        what = f"ssh authentication as {user}@{host} was refused"
        what += f" (is {key} in the remote authorized_keys?)" if key else " (check the user name and key)"
    elif "Host key verification failed" in stderr or "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr:
        what = f"the host key of {host} is unknown or changed (add it to known_hosts, or use no_verify=1)"
    elif code == 127 or "not found" in stderr or "No such file or directory" in stderr:
        what = f"pyvirt is not installed on {host} ('{command}' was not found there; set command=PATH)"
    elif code == 126:
        what = f"'{command}' on {host} cannot be run (permission denied)"
    elif "Connection closed" in stderr or "Connection reset" in stderr:
        what = f"{host} closed the ssh connection"
    else:
        what = f"ssh connection to {host} failed"
    return f"{what}: {last}"


def open_remote(uri: URI, readonly: bool) -> Transport:
    if uri.transport == "ssh":
        return open_ssh(uri, readonly)
    if uri.transport == "tls":
        from pyvirt.client.tls import open_tls

        return open_tls(uri, readonly)
    raise InvalidArgument(f"unsupported transport '{uri.transport}'")
