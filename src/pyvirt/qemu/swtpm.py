"""swtpm, the TPM emulator a domain's ``<tpm><backend type='emulator'>`` gets: its state made once with
``swtpm_setup`` (an endorsement key and its certificates, signed by a local CA of this daemon's own),
its PCR banks chosen at each start, and one ``swtpm socket`` per running domain that QEMU's
``-tpmdev emulator`` talks to through a control socket.

As libvirt 9.0 runs it: the state under ``STATE/swtpm/UUID/tpm2`` (``tpm1.2``), the log beside the
domain's, swtpm and swtpm_setup as QEMU's user (and Landlock-confined to their files, like QEMU);
``--terminate`` makes swtpm end with QEMU's connection. An encryption passphrase goes to both tools
through a pipe (``--pwdfile-fd``, ``--key pwdfd=``), never on a command line or in a file; the same
passphrase keys the state QEMU carries in a save image or a memory snapshot (``--migration-key``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pyvirt.errors import OperationFailed
from pyvirt.qemu import cgroup, cpuacct, landlock
from pyvirt.qemu.process import _confine, kill_and_wait

log = logging.getLogger(__name__)

CIPHER = "aes-256-cbc"
SOCKET = "swtpm.sock"
PIDFILE = "swtpm.pid"
_START_TIMEOUT = 30.0  # seconds for the control socket to appear (a loaded 2-core host)


@dataclass
class Paths:
    """Where one domain's emulator keeps its state and log, and where it runs."""

    state: Path  # the TPM state directory (tpm2 or tpm1.2 under the domain's UUID)
    log: Path
    run_dir: Path  # the domain's run folder: control socket and pidfile
    config: Path  # the daemon's swtpm_setup.conf (its local CA)

    @property
    def socket(self) -> Path:
        return self.run_dir / SOCKET

    @property
    def pidfile(self) -> Path:
        return self.run_dir / PIDFILE


def state_dir(base: Path, uuid: str, version: str) -> Path:
    return base / uuid / ("tpm2" if version == "2.0" else "tpm1.2")


def has_state(path: Path) -> bool:
    """True once swtpm_setup has written the state (``tpm2-00.permall`` or ``tpm-00.permall``)."""
    return any(path.glob("tpm*-00.permall"))


def write_ca_config(etc: Path, ca_dir: Path) -> Path:
    """The daemon's swtpm_setup configuration: its own local CA in ``ca_dir`` (writable by QEMU's
    user, who runs swtpm_setup), not the host's ``/var/lib/swtpm-localca`` that belongs to ``tss``.
    Returns the path of ``swtpm_setup.conf``."""
    etc.mkdir(parents=True, exist_ok=True)
    localca = etc / "swtpm-localca.conf"
    localca.write_text(
        f"statedir = {ca_dir}\n"
        f"signingkey = {ca_dir}/signkey.pem\n"
        f"issuercert = {ca_dir}/issuercert.pem\n"
        f"certserial = {ca_dir}/certserial\n"
    )
    options = etc / "swtpm-localca.options"
    options.write_text("--platform-manufacturer pyvirt\n--platform-version 2.1\n--platform-model QEMU\n")
    conf = etc / "swtpm_setup.conf"
    conf.write_text(
        "create_certs_tool = /usr/bin/swtpm_localca\n"
        f"create_certs_tool_config = {localca}\n"
        f"create_certs_tool_options = {options}\n"
    )
    return conf


def setup_argv(
    paths: Paths, version: str, vmid: str, *, pwd_fd: int | None, pcr_banks: list[str] | None, incoming: bool
) -> list[str]:
    """``swtpm_setup`` making a new state: with an endorsement key and certificates, or (the state
    comes with an incoming save image) a blank one QEMU overwrites."""
    argv = ["swtpm_setup", "--config", str(paths.config)]
    argv += ["--tpm2"] if version == "2.0" else []
    if pwd_fd is not None:
        argv += ["--pwdfile-fd", str(pwd_fd), "--cipher", CIPHER]
    argv += ["--tpm-state", str(paths.state), "--logfile", str(paths.log)]
    if incoming:
        return [*argv, "--overwrite"]
    argv += ["--vmid", vmid, "--createek", "--create-ek-cert", "--create-platform-cert", "--lock-nvram"]
    if pcr_banks:
        argv += ["--pcr-banks", ",".join(pcr_banks)]
    return [*argv, "--not-overwrite"]


def reconfigure_argv(paths: Paths, pcr_banks: list[str], *, pwd_fd: int | None) -> list[str]:
    """``swtpm_setup --reconfigure``: activate ``pcr_banks`` (and only them) of an existing TPM 2.0."""
    argv = ["swtpm_setup", "--config", str(paths.config), "--tpm2"]
    if pwd_fd is not None:
        argv += ["--pwdfile-fd", str(pwd_fd), "--cipher", CIPHER]
    return [
        *argv,
        *("--tpm-state", str(paths.state), "--logfile", str(paths.log)),
        *("--pcr-banks", ",".join(pcr_banks), "--reconfigure"),
    ]


def swtpm_argv(paths: Paths, version: str, *, key_fds: tuple[int, int] | None) -> list[str]:
    """``swtpm socket`` serving QEMU on the control socket; ``key_fds``: the passphrase pipes of the
    state's key and of the migration key."""
    argv = [
        "swtpm",
        "socket",
        *("--ctrl", f"type=unixio,path={paths.socket},mode=0600"),
        *("--tpmstate", f"dir={paths.state},mode=0600"),
        *("--log", f"file={paths.log}"),
        *("--pid", f"file={paths.pidfile}"),
        "--terminate",
    ]
    argv += ["--tpm2"] if version == "2.0" else []
    if key_fds is not None:
        argv += ["--key", f"pwdfd={key_fds[0]},mode={CIPHER}"]
        argv += ["--migration-key", f"pwdfd={key_fds[1]},mode={CIPHER}"]
    return argv


def passphrase_pipe(value: bytes) -> int:
    """The read end of a pipe holding ``value`` (written whole, the write end closed)."""
    if len(value) >= 65536:
        raise OperationFailed("the TPM state's passphrase is too long (64 KiB at most)")
    read, write = os.pipe()
    try:
        os.write(write, value)
    finally:
        os.close(write)
    return read


@contextlib.contextmanager
def _confined(
    credentials: list[int] | None, paths: Paths, cgroup_path: str | None = None
) -> Iterator[Callable[[], None] | None]:
    """What the child runs before exec: join the domain's cgroup (``cgroup_path``) and its cpuacct twin,
    as QEMU does, drop to QEMU's user and shut itself in its files."""
    procs_fds: list[int] = []
    ruleset = None
    try:
        if cgroup_path:
            procs_fds.append(cgroup.open_procs(Path(cgroup_path)))
            acct_fd = cpuacct.open_twin_procs(cgroup_path)  # a hybrid host's per-CPU accounting
            if acct_fd is not None:
                procs_fds.append(acct_fd)
        ruleset = landlock.build(_access(paths))
        yield _confine(procs_fds, credentials, ruleset)
    finally:
        for fd in procs_fds:
            os.close(fd)
        if ruleset is not None:
            os.close(ruleset)


def _access(paths: Paths) -> dict[str, str]:
    """The files swtpm and swtpm_setup may open besides the system's: the state, the log, the run
    folder and the daemon's local CA (and its configuration)."""
    return {
        str(paths.state): "dir",
        str(paths.log): "rw",
        str(paths.run_dir): "dir",
        str(paths.config.parent): "dir",
        **_ca_dirs(paths.config),
        "/tmp": "dir",  # swtpm_setup runs a swtpm of its own on a socket in a temporary folder
    }


def _ca_dirs(config: Path) -> dict[str, str]:
    localca = config.parent / "swtpm-localca.conf"
    with contextlib.suppress(OSError):
        for line in localca.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "statedir":
                return {value.strip(): "dir"}
    return {}


def run_setup(argv: list[str], paths: Paths, credentials: list[int] | None, fds: tuple[int, ...]) -> None:
    """Run ``swtpm_setup`` (blocking) as QEMU's user; its failure names the log that says why."""
    try:
        with _confined(credentials, paths) as preexec:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                pass_fds=fds,
                env={"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/", "TMPDIR": "/tmp"},
                preexec_fn=preexec,
                check=False,
                timeout=300,
            )
    except (OSError, subprocess.SubprocessError) as err:
        raise OperationFailed(f"internal error: could not run swtpm_setup: {err}") from err
    if result.returncode != 0:
        said = (result.stderr or result.stdout).decode(errors="replace").strip().splitlines()
        raise OperationFailed(
            f"internal error: swtpm_setup failed (exit status {result.returncode}): "
            f"{said[-1] if said else 'no output'}; see {paths.log}"
        )


def spawn(
    argv: list[str],
    paths: Paths,
    credentials: list[int] | None,
    fds: tuple[int, ...],
    cgroup_path: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``swtpm socket`` in a session of its own (it outlives a daemon restart, as QEMU does), in
    the domain's cgroup ``cgroup_path`` when it has one (as libvirt puts it), and return once its
    control socket is there; on failure it is ended and the error says why."""
    with contextlib.suppress(FileNotFoundError):
        paths.socket.unlink()
    try:
        with _confined(credentials, paths, cgroup_path) as preexec:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=fds,
                start_new_session=True,
                env={"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/"},
                preexec_fn=preexec,
            )
    except (OSError, subprocess.SubprocessError) as err:
        raise OperationFailed(f"internal error: could not run swtpm: {err}") from err
    deadline = time.monotonic() + _START_TIMEOUT
    while not paths.socket.exists():
        if proc.poll() is not None:
            assert proc.stderr is not None
            said = proc.stderr.read().decode(errors="replace").strip()
            raise OperationFailed(
                f"internal error: swtpm exited at start (status {proc.returncode}): {said or 'no output'}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise OperationFailed("operation timed out: swtpm's control socket did not show up")
        time.sleep(0.02)
    assert proc.stderr is not None
    proc.stderr.close()
    return proc


def running_pid(run_dir: Path) -> int | None:
    """The pid of the swtpm serving the domain whose run folder is ``run_dir`` (its pidfile, checked
    against the process's command line), or None."""
    try:
        pid = int((run_dir / PIDFILE).read_text().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            args = fh.read().split(b"\0")
    except (OSError, ValueError):
        return None
    if not args or os.path.basename(args[0]) != b"swtpm":
        return None
    return pid if any(os.fsencode(str(run_dir / SOCKET)) in arg for arg in args) else None


def stop(run_dir: Path, timeout: float = 5.0) -> None:
    """End the swtpm of the domain whose run folder is ``run_dir``, if one runs (it ends by itself
    once QEMU has gone; this covers a QEMU that never connected). Waits until it has exited, so
    that its state is complete when the domain is shut off."""
    pid = running_pid(run_dir)
    if pid is None:
        return
    try:
        kill_and_wait(pid, timeout, term=True)
    except OperationFailed as err:
        log.warning("swtpm in %s: %s", run_dir, err)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
