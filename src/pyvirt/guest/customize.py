"""virt-customize's core: steps that edit a guest offline, applied in the order given, in one launch.

Each step is a small frozen dataclass with ``describe()`` (the progress line) and ``apply(session)``.
The CLI parses options into steps; :func:`customize` launches the appliance once and applies them.
sysprep's ``customize`` operation applies the same steps after its clean-up.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pyvirt.errors import InvalidArgument, InvalidState, OperationFailed
from pyvirt.guest import passwords
from pyvirt.guest.appliance import Disk, launched
from pyvirt.guest.context import Session
from pyvirt.guest.inspect import inspect, mount_all

_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


class Step(Protocol):
    """One customization."""

    def describe(self) -> str: ...

    def apply(self, s: Session) -> None: ...


def _require_linux(s: Session, what: str) -> None:
    if not s.info.is_linux:
        raise InvalidArgument(f"{what} is only supported on Linux guests (this one is {s.info.type})")


def _passwd_entry(s: Session, user: str) -> tuple[int, int, str]:
    """(uid, gid, home) of ``user`` from the guest's /etc/passwd."""
    passwd = s.read_if_exists("/etc/passwd") or ""
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) >= 6 and fields[0] == user:
            try:
                return int(fields[2]), int(fields[3]), fields[5]
            except ValueError:
                break
    if user == "root":
        return 0, 0, "/root"
    raise InvalidArgument(f"user {user} does not exist in the guest's /etc/passwd")


def validate_hostname(name: str) -> str:
    if not _HOSTNAME_RE.match(name):
        raise InvalidArgument(
            f"invalid hostname {name!r}: use letters, digits and '-' "
            "in dot-separated labels of 1-63 characters"
        )
    return name


@dataclass(frozen=True)
class Hostname:
    """Set the hostname: /etc/hostname, /etc/hosts' 127.0.1.1 line, RHEL's /etc/sysconfig/network."""

    name: str

    def describe(self) -> str:
        return f"Setting the hostname: {self.name}"

    def apply(self, s: Session) -> None:
        _require_linux(s, "--hostname")
        short = self.name.split(".", 1)[0]
        old = (s.read_if_exists("/etc/hostname") or "").strip() or s.info.hostname
        s.write("/etc/hostname", self.name + "\n")
        hosts = s.read_if_exists("/etc/hosts")
        if hosts is not None:
            s.write("/etc/hosts", _hosts_with(hosts, old, self.name, short, s.info.family == "debian"))
        network = s.read_if_exists("/etc/sysconfig/network")
        if network is not None and "HOSTNAME=" in network:
            lines = [
                f"HOSTNAME={self.name}" if ln.startswith("HOSTNAME=") else ln for ln in network.splitlines()
            ]
            s.write("/etc/sysconfig/network", "\n".join(lines) + "\n")


def _hosts_with(hosts: str, old: str, new: str, short: str, add_loopback: bool) -> str:
    names = [new, short] if short != new else [new]
    lines = []
    found = False
    for line in hosts.splitlines():
        fields = line.split()
        if fields and fields[0] == "127.0.1.1":
            lines.append("\t".join(["127.0.1.1", " ".join(names)]))
            found = True
        elif old and old not in ("localhost", "unknown") and old in fields[1:]:
            lines.append(" ".join(new if f == old else f for f in fields))
        else:
            lines.append(line)
    if not found and add_loopback:
        lines.append("127.0.1.1\t" + " ".join(names))
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class UserPassword:
    """Set a user's password in /etc/shadow (SHA-512 crypt); ``random`` prints the one chosen."""

    user: str
    selector: passwords.PasswordSelector

    def describe(self) -> str:
        return f"Setting passwords: {self.user}"

    def apply(self, s: Session) -> None:
        _require_linux(s, "--root-password")
        shadow = s.read_if_exists("/etc/shadow")
        if shadow is None:
            raise InvalidArgument("the guest has no /etc/shadow: cannot set a password")
        clear = self.selector.resolve()
        hashed = passwords.shadow_hash(self.selector, clear)
        s.write("/etc/shadow", passwords.set_shadow_password(shadow, self.user, hashed), mode=0o640)
        if self.selector.kind == "random":
            s.notes.append(f"Setting random password of {self.user} to {clear}")


@dataclass(frozen=True)
class SSHInject:
    """Append a public key to ~USER/.ssh/authorized_keys (created 0700/0600, owned by the user)."""

    user: str
    key: str

    def describe(self) -> str:
        return f"SSH key inject: {self.user}"

    def apply(self, s: Session) -> None:
        _require_linux(s, "--ssh-inject")
        uid, gid, home = _passwd_entry(s, self.user)
        ssh_dir = f"{home.rstrip('/')}/.ssh"
        keys_file = f"{ssh_dir}/authorized_keys"
        if not s.is_dir(ssh_dir):
            s.mkdir(ssh_dir, 0o700)
            s.chown(uid, gid, ssh_dir)
        existing = s.read_if_exists(keys_file) or ""
        if self.key in existing.splitlines():
            return
        if existing and not existing.endswith("\n"):
            existing += "\n"
        s.write(keys_file, existing + self.key + "\n", mode=0o600)
        s.chown(uid, gid, keys_file)


def parse_ssh_inject(text: str) -> SSHInject:
    """``USER:file:PATH`` or ``USER:string:KEY`` (``USER`` alone takes the host's ~/.ssh/id_*.pub)."""
    user, sep, selector = text.partition(":")
    if not user:
        raise InvalidArgument(f"invalid --ssh-inject {text!r}: use USER:file:KEYFILE or USER:string:KEY")
    if not sep:
        candidates = sorted(Path.home().glob(".ssh/id_*.pub"))
        if not candidates:
            raise InvalidArgument(
                f"--ssh-inject {user}: no ~/.ssh/id_*.pub on this host; use {user}:file:KEYFILE"
            )
        return SSHInject(user, candidates[0].read_text().strip())
    kind, sep, value = selector.partition(":")
    if kind == "file" and sep:
        try:
            key = Path(value).read_text().strip()
        except OSError as err:
            raise InvalidArgument(f"cannot read the SSH key file {value}: {err.strerror}") from err
    elif kind == "string" and sep:
        key = value.strip()
    else:
        raise InvalidArgument(f"invalid --ssh-inject {text!r}: use USER:file:KEYFILE or USER:string:KEY")
    if not key or "\n" in key:
        raise InvalidArgument(f"--ssh-inject {user}: the key must be exactly one line")
    return SSHInject(user, key)


@dataclass(frozen=True)
class Write:
    """Write CONTENT to FILE, replacing it."""

    path: str
    content: str

    def describe(self) -> str:
        return f"Writing: {self.path}"

    def apply(self, s: Session) -> None:
        s.write(self.path, self.content)


@dataclass(frozen=True)
class AppendLine:
    """Append LINE to FILE, first ending the last line if it is unterminated; keeps CRLF files CRLF."""

    path: str
    line: str

    def describe(self) -> str:
        return f"Appending line to {self.path}"

    def apply(self, s: Session) -> None:
        current = s.read_if_exists(self.path)
        if current is None:
            if s.exists(self.path):
                raise InvalidArgument(f"--append-line: {self.path} in the guest is not a regular file")
            s.write(self.path, self.line + "\n")
            return
        eol = "\r\n" if "\r\n" in current else "\n"
        if current and not current.endswith("\n"):
            current += eol
        s.write(self.path, current + self.line + eol)


@dataclass(frozen=True)
class Delete:
    """Delete a file or directory (recursively); wildcards are expanded in the guest."""

    pattern: str

    def describe(self) -> str:
        return f"Deleting: {self.pattern}"

    def apply(self, s: Session) -> None:
        s.remove_glob(self.pattern)


@dataclass(frozen=True)
class RunCommand:
    """Run a shell command inside the guest (chrooted, /dev /proc /sys bound), with the guest's /bin/sh."""

    command: str

    def describe(self) -> str:
        return f"Running: {self.command}"

    def apply(self, s: Session) -> None:
        run_in_guest(s, self.command, what=f"--run-command {self.command!r}")


def run_in_guest(s: Session, command: str, *, what: str) -> str:
    """Run ``command`` with the guest's /bin/sh; its output, or OperationFailed saying what failed."""
    if not s.exists("/bin/sh"):
        raise InvalidState(f"{what}: the guest has no /bin/sh to run commands with")
    s.record("run", command)
    if s.dry_run:
        return ""
    try:
        out: str = s.g.sh(command)
    except RuntimeError as err:
        raise OperationFailed(f"{what} failed in the guest: {err}") from err
    for line in out.splitlines():
        s.say(f"  {line}")
    return out


_INSTALL_COMMANDS = {
    "apt": "apt-get update -q && DEBIAN_FRONTEND=noninteractive "
    "apt-get install -y -q --no-install-recommends {pkgs}",
    "dnf": "dnf -y install {pkgs}",
    "yum": "yum -y install {pkgs}",
    "zypper": "zypper -n in -l {pkgs}",
    "apk": "apk add {pkgs}",
    "pacman": "pacman -S --noconfirm {pkgs}",
}


def install_command(package_management: str, packages: Sequence[str]) -> str:
    template = _INSTALL_COMMANDS.get(package_management)
    if template is None:
        raise InvalidArgument(
            f"--install: the guest's package manager ({package_management}) is not supported"
        )
    for pkg in packages:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9.+:_@=~-]*$", pkg):
            raise InvalidArgument(f"--install: invalid package name {pkg!r}")
    return template.format(pkgs=" ".join(packages))


@dataclass(frozen=True)
class Install:
    """Install packages with the guest's own package manager; needs network in the appliance."""

    packages: tuple[str, ...]

    def describe(self) -> str:
        return f"Installing packages: {' '.join(self.packages)}"

    def apply_offline_error(self) -> None:
        raise InvalidState(
            f"--install {','.join(self.packages)}: the appliance has no network, so the guest's package "
            "manager cannot download anything; run with --network on a host with network access"
        )

    def apply(self, s: Session) -> None:
        _require_linux(s, "--install")
        if not s.network:
            self.apply_offline_error()
        command = install_command(s.info.package_management, self.packages)
        run_in_guest(s, command, what=f"--install {','.join(self.packages)}")


@dataclass(frozen=True)
class PrepareTemplate:
    """The template preparation for the guest's OS family (see :mod:`pyvirt.guest.prepare`)."""

    def describe(self) -> str:
        return "Preparing the guest as a template"

    def apply(self, s: Session) -> None:
        from pyvirt.guest.prepare import prepare_template

        prepare_template(s)


def split_pair(option: str, text: str, what: str) -> tuple[str, str]:
    """Split ``FILE:REST`` at the first colon."""
    left, sep, right = text.partition(":")
    if not sep or not left:
        raise InvalidArgument(f"invalid {option} {text!r}: expected {what}")
    return left, right


def apply_steps(s: Session, steps: Sequence[Step]) -> None:
    """Apply ``steps`` in order; then, if they changed files of a guest enforcing SELinux, have it relabel."""
    before = len(s.changes)
    for step in steps:
        s.say(step.describe())
        step.apply(s)
    if len(s.changes) > before and selinux_active(s):
        # Files written from the appliance carry no SELinux label; the guest relabels on its next boot.
        s.say("SELinux relabelling will happen at the next boot")
        s.write("/.autorelabel", "")


def selinux_active(s: Session) -> bool:
    config = s.read_if_exists("/etc/selinux/config")
    if config is None:
        return False
    modes = [
        line.split("=", 1)[1].strip() for line in config.splitlines() if line.strip().startswith("SELINUX=")
    ]
    return bool(modes) and modes[-1] in ("enforcing", "permissive")


def needs_network(steps: Sequence[Step]) -> bool:
    return any(isinstance(step, Install) for step in steps)


def check_network(steps: Sequence[Step], network: bool) -> None:
    """Refuse --install without network before paying for an appliance launch."""
    for step in steps:
        if isinstance(step, Install) and not network:
            step.apply_offline_error()


def customize(
    disks: Sequence[Disk],
    steps: Sequence[Step],
    *,
    network: bool | None = None,
    dry_run: bool = False,
    quiet: bool = False,
    verbose: bool = False,
) -> Session:
    """Launch once, inspect, mount, apply ``steps`` in order; return the session (changes, notes)."""
    if network is None:
        network = needs_network(steps)
    check_network(steps, network)
    disks = [Disk(d.path, d.format, readonly=d.readonly or dry_run) for d in disks]
    session: Session | None = None
    with launched(disks, network=network, verbose=verbose) as g:
        session = Session(g=g, info=inspect(g, disks[0].path), dry_run=dry_run, network=network, quiet=quiet)
        session.say(f"Examining the guest: {session.info.product_name}")
        for warning in mount_all(g, session.info, readonly=dry_run):
            session.say(f"warning: {warning}")
        apply_steps(session, steps)
        session.say("Finishing off")
        g.umount_all()
    return session
