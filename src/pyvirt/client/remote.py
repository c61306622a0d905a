"""Remote transports: ``qemu+ssh://`` through ``ssh … pyvirt proxy``, and ``qemu+tls://``.

For ``qemu+ssh://[user@]host[:port]/MODE`` the client runs, like libvirt with virt-ssh-helper::

    ssh [-p PORT] [-i KEYFILE -o IdentitiesOnly=yes] [-T -o BatchMode=yes] [user@]host \\
        pyvirt proxy --mode MODE [--socket PATH] [--readonly]

on one end of a socketpair and speaks HTTP through it. Authentication is ssh's own. ``command=``
names the remote pyvirt when it is not on the remote PATH. Every stream (console, events) opens its
own ssh channel. Commands share one authenticated ssh connection per user, host, port and key, kept
for a minute after its last use (``control_persist=SECONDS`` in the URI or
``$PYVIRT_SSH_CONTROL_PERSIST``; 0 turns it off). When ssh fails, the error says which step did:
reaching the host, the key, the remote pyvirt, or the remote daemon.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # the C half of signal, which imports enum
import _socket
import os
import time

from pyvirt.client.transport import Transport
from pyvirt.errors import ConnectionFailed, InvalidArgument, TimedOut

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from pyvirt.uri import URI

GREETING = b"pyvirt-proxy 1"
_SHELL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@%+=:,./-_")


def shell_quote(word: str) -> str:
    """``shlex.quote`` (the remote command goes through the remote user's shell), without ``re``."""
    if word and set(word) <= _SHELL_SAFE:
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


def ssh_argv(uri: URI, readonly: bool, connect_timeout: float | None = 20) -> list[str]:
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
    argv += ["-T", "-e", "none"]
    if connect_timeout is not None:
        argv += ["-o", f"ConnectTimeout={max(1, round(connect_timeout))}"]
    argv += shared_connection_options(uri)
    host = str(uri.host)
    argv.append(f"{uri.user}@{host}" if uri.user else host)
    argv.append("--")
    remote = [uri.params.get("command", "pyvirt"), "proxy", "--mode", uri.mode]
    if uri.params.get("socket"):
        remote += ["--socket", uri.params["socket"]]
    if readonly:
        remote.append("--readonly")
    argv.append(" ".join(shell_quote(a) for a in remote))
    return argv


def control_persist(uri: URI) -> int:
    """Seconds an idle shared ssh connection stays open: ``control_persist=`` in the URI, else
    ``$PYVIRT_SSH_CONTROL_PERSIST``, else 60; 0 turns sharing off."""
    text = uri.params.get("control_persist") or os.environ.get("PYVIRT_SSH_CONTROL_PERSIST") or "60"
    if not text.isdigit():
        raise InvalidArgument(f"control_persist must be a number of seconds, not '{text}'")
    return int(text)


def control_dir() -> str:
    """Where the shared connections' sockets live: a private folder of the user's."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = os.path.join(runtime, "pyvirt") if runtime else os.path.expanduser("~/.cache/pyvirt")
    path = os.path.join(base, "ssh")
    if len(path) > 40:  # room for ssh's 40-digit %C, our tag and ssh's temporary suffix in 107 bytes
        path = f"/tmp/pyvirt-ssh-{os.getuid()}"
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.stat(path)
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise ConnectionFailed(f"{path} must be a folder of yours that nobody else can enter (mode 0700)")
    return path


def shared_connection_options(uri: URI) -> list[str]:
    """ssh options that share one authenticated connection between pyvirt commands, as Ansible does.

    The first command to a host starts a master connection that stays for ``control_persist``
    seconds after its last use; later commands open a channel on it instead of a new TCP connection,
    key exchange and authentication (the bulk of a remote command's time). ssh's ``%C`` names the
    user, host and port; the key file and the host-key checking mode are added, so a connection made
    with one key or with checks off never serves a command that asked for another key or for checks.
    """
    seconds = control_persist(uri)
    if seconds == 0:
        return []
    import zlib

    tag = zlib.crc32(f"{uri.params.get('keyfile', '')}\0{uri.flag('no_verify')}".encode())
    path = os.path.join(control_dir(), f"%C-{tag:08x}")
    return ["-o", "ControlMaster=auto", "-o", f"ControlPath={path}", "-o", f"ControlPersist={seconds}"]


class SSHProcess:
    """The ssh child, spawned with ``posix_spawn``: ``subprocess`` (and ``signal``, which imports
    ``enum``) would cost the CLI ~4 ms of imports. Signals Python ignores are reset for ssh, as
    ``subprocess``'s ``restore_signals`` does."""

    def __init__(self, argv: list[str], stdio: int, stderr: int) -> None:
        actions = [
            (os.POSIX_SPAWN_DUP2, stdio, 0),
            (os.POSIX_SPAWN_DUP2, stdio, 1),
            (os.POSIX_SPAWN_DUP2, stderr, 2),
        ]
        self.pid = os.posix_spawnp(
            argv[0],
            argv,
            os.environ,
            file_actions=actions,
            setsigmask=(),
            setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ),
        )
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float) -> int | None:
        """The exit status, or None if ssh is still running after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while self.poll() is None:
            if time.monotonic() >= deadline:
                return None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return self.returncode

    def send(self, signum: int) -> None:
        if self.returncode is None:  # not reaped yet, so the pid is still ours
            os.kill(self.pid, signum)

    def stop(self) -> None:
        """End ssh now (SIGTERM, then SIGKILL after 5 s) and reap it."""
        self.send(_signal.SIGTERM)
        if self.wait(5) is None:
            self.send(_signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.returncode = -_signal.SIGKILL


class SSHTransport(Transport):
    """A Transport whose socket is one end of a socketpair wired to an ssh process's stdio."""

    def __init__(
        self, sock: _socket.socket, proc: SSHProcess, description: str, read_timeout: float | None = None
    ) -> None:
        super().__init__(sock, description, read_timeout)
        self.proc = proc

    def close(self) -> None:
        super().close()
        # Every reply has been read by now: end ssh at once rather than wait for the remote side
        # to notice the end of input (a round trip the caller would pay for).
        self.proc.stop()


def _scratch_file() -> int:
    """An unlinked file for ssh's stderr: nothing has to drain it; it explains a failure."""
    tmp = os.environ.get("TMPDIR") or "/tmp"
    try:
        return os.open(tmp, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError:
        import tempfile

        fh = tempfile.TemporaryFile()  # noqa: SIM115 - only its descriptor is kept
        fd = os.dup(fh.fileno())
        fh.close()
        return fd


def _read_all(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace").strip()


def open_ssh(uri: URI, readonly: bool) -> Transport:
    from pyvirt.clientconf import timeouts

    connect_timeout, read_timeout = timeouts()
    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    argv = ssh_argv(uri, readonly, connect_timeout)
    errfd = _scratch_file()
    try:
        proc = SSHProcess(argv, theirs.fileno(), errfd)
    except FileNotFoundError as err:
        ours.close()
        os.close(errfd)
        raise ConnectionFailed("cannot run 'ssh': install the openssh-client package") from err
    finally:
        theirs.close()
    transport = SSHTransport(ours, proc, uri.canonical(), read_timeout)
    # The proxy greets with one line once it reached the daemon; ssh failures show up as EOF here.
    # ssh may ask for a password or passphrase on the terminal first: then only ssh's own
    # ConnectTimeout bounds the wait; with no_tty it cannot ask, and the greeting is due in time.
    greeting_timeout: float | None = None
    if uri.flag("no_tty") and connect_timeout is not None and read_timeout is not None:
        greeting_timeout = connect_timeout + read_timeout
    ours.settimeout(greeting_timeout)
    try:
        greeting = transport._recv_until(b"\n")
    except TimedOut as err:
        proc.stop()
        os.close(errfd)
        transport.sock.close()
        raise TimedOut(
            f"ssh to {uri.host} started, but the remote pyvirt did not greet within "
            f"{greeting_timeout:g} s (connect_timeout + read_timeout in pyvirt.conf)"
        ) from err
    except (ConnectionFailed, OSError):
        if proc.wait(30) is None:
            proc.stop()
        stderr = _read_all(errfd)
        os.close(errfd)
        transport.sock.close()
        raise ConnectionFailed(explain_ssh_failure(uri, proc.returncode, stderr)) from None
    os.close(errfd)
    ours.settimeout(read_timeout)
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
