"""Sysprep: remove a guest's machine-specific state so that clones of it are distinct machines.

Operations are small functions in a registry, each with a name, a one-line description and whether
it runs by default, as virt-sysprep lists them. All selected operations run in ONE appliance launch
(the launch dominates the cost); ``customize`` runs last and applies virt-customize steps
(hostname, passwords, keys, files) given on the same command line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyvirt.errors import InvalidArgument
from pyvirt.guest.appliance import Disk, launched
from pyvirt.guest.context import Session
from pyvirt.guest.customize import Step, apply_steps, check_network, needs_network
from pyvirt.guest.inspect import inspect, mount_all

Perform = Callable[[Session, Sequence[Step]], None]


@dataclass(frozen=True)
class Operation:
    name: str
    description: str
    default: bool
    perform: Perform
    order: int = 0  # lower runs first; customize runs last


OPERATIONS: dict[str, Operation] = {}


def operation(
    name: str, description: str, *, default: bool = True, order: int = 0
) -> Callable[[Perform], Perform]:
    """Register the decorated function as the sysprep operation ``name``."""

    def register(func: Perform) -> Perform:
        if name in OPERATIONS:
            raise ValueError(f"sysprep operation {name} registered twice")
        OPERATIONS[name] = Operation(name, description, default, func, order)
        return func

    return register


def _linux(s: Session) -> bool:
    return s.info.is_linux


def _unix(s: Session) -> bool:
    return s.info.type != "windows"


@operation("machine-id", "Remove the local machine ID")
def _machine_id(s: Session, _: Sequence[Step]) -> None:
    # Emptied, not removed: systemd then generates a fresh ID on the next boot.
    if _unix(s):
        for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
            if s.is_file(path):
                s.truncate(path)


@operation("ssh-hostkeys", "Remove the SSH host keys in the guest")
def _ssh_hostkeys(s: Session, _: Sequence[Step]) -> None:
    if _unix(s):
        s.remove_glob("/etc/ssh/*_host_*")


@operation("udev-persistent-net", "Remove udev persistent net rules")
def _udev_persistent_net(s: Session, _: Sequence[Step]) -> None:
    path = "/etc/udev/rules.d/70-persistent-net.rules"
    if _linux(s) and s.exists(path):
        s.remove(path)


IFCFG_GLOBS = ("/etc/sysconfig/network-scripts/ifcfg-*", "/etc/sysconfig/network/ifcfg-*")


def _drop_ifcfg_keys(s: Session, keys: tuple[str, ...]) -> None:
    for pattern in IFCFG_GLOBS:
        for path in s.glob(pattern):
            if not s.is_file(path):
                continue
            text = s.read(path)
            lines = text.splitlines()
            kept = [ln for ln in lines if not ln.lstrip().startswith(keys)]
            if kept != lines:
                s.write(path, "\n".join(kept) + "\n")


@operation("net-hwaddr", "Remove HWADDR (hard-coded MAC address) and UUID configuration")
def _net_hwaddr(s: Session, _: Sequence[Step]) -> None:
    # UUID= ties a NetworkManager connection to this one machine just as HWADDR= ties it to one NIC.
    if _linux(s):
        _drop_ifcfg_keys(s, ("HWADDR=", "UUID="))


@operation("net-hostname", "Remove HOSTNAME and DHCP_HOSTNAME in network interface configuration")
def _net_hostname(s: Session, _: Sequence[Step]) -> None:
    if _linux(s):
        _drop_ifcfg_keys(s, ("HOSTNAME=", "DHCP_HOSTNAME="))


@operation("dhcp-client-state", "Remove DHCP client leases")
def _dhcp_client_state(s: Session, _: Sequence[Step]) -> None:
    if _linux(s):
        for pattern in ("/var/lib/dhclient/*", "/var/lib/dhcp/*", "/var/lib/NetworkManager/*.lease"):
            s.remove_glob(pattern)


@operation("dhcp-server-state", "Remove DHCP server leases")
def _dhcp_server_state(s: Session, _: Sequence[Step]) -> None:
    if _linux(s):
        for pattern in ("/var/lib/dhcpd/*", "/var/lib/dnsmasq/*.leases", "/var/lib/misc/dnsmasq.leases"):
            s.remove_glob(pattern)


LOG_GLOBS = (
    "/var/log/*.log*",
    "/var/log/*.gz",
    "/var/log/*.[0-9]",
    "/var/log/syslog*",
    "/var/log/messages*",
    "/var/log/secure*",
    "/var/log/maillog*",
    "/var/log/cron*",
    "/var/log/debug*",
    "/var/log/dmesg*",
    "/var/log/btmp*",
    "/var/log/wtmp*",
    "/var/log/lastlog*",
    "/var/log/faillog*",
    "/var/log/tallylog*",
    "/var/log/spooler*",
    "/var/log/xferlog*",
    "/var/log/audit/*",
    "/var/log/apt/*",
    "/var/log/aptitude*",
    "/var/log/dnf*",
    "/var/log/yum.log*",
    "/var/log/anaconda/*",
    "/var/log/installer/*",
    "/var/log/journal/*",
    "/var/log/exim4/*",
    "/var/log/mail/*",
    "/var/log/sa/*",
    "/var/log/chrony/*.log",
    "/var/log/httpd/*log",
    "/var/log/apache2/*log*",
    "/var/log/nginx/*.log*",
    "/var/log/libvirt/qemu/*.log",
    "/var/log/cloud-init*.log",
    "/var/log/rhsm/*",
    "/var/lib/logrotate.status",
    "/var/lib/logrotate/status",
    "/root/install.log*",
    "/root/anaconda-ks.cfg",
    "/root/anaconda-post.log",
    "/root/original-ks.cfg",
)


@operation("logfiles", "Remove many log files from the guest")
def _logfiles(s: Session, _: Sequence[Step]) -> None:
    if _linux(s):
        for pattern in LOG_GLOBS:
            s.remove_glob(pattern)


@operation("bash-history", "Remove the bash history in the guest")
def _bash_history(s: Session, _: Sequence[Step]) -> None:
    if _unix(s):
        for pattern in ("/root/.bash_history", "/home/*/.bash_history"):
            s.remove_glob(pattern)


@operation("tmp-files", "Remove temporary files")
def _tmp_files(s: Session, _: Sequence[Step]) -> None:
    # The directories stay (with their sticky bit); everything in them, dot files too, goes.
    if _unix(s):
        for directory in ("/tmp", "/var/tmp"):
            if s.is_dir(directory):
                for name in s.g.ls(directory):
                    s.remove(f"{directory}/{name}")


PACKAGE_CACHES = {
    "apt": ("/var/cache/apt/archives",),
    "dnf": ("/var/cache/dnf",),
    "yum": ("/var/cache/yum",),
    "zypper": ("/var/cache/zypp",),
    "apk": ("/var/cache/apk",),
    "pacman": ("/var/cache/pacman/pkg",),
}


@operation("package-manager-cache", "Remove package manager cache")
def _package_manager_cache(s: Session, _: Sequence[Step]) -> None:
    # Files only: the directory skeleton (apt's partial/, lock) is what the package manager expects.
    for directory in PACKAGE_CACHES.get(s.info.package_management, ()):
        if not s.is_dir(directory):
            continue
        for relative in s.g.find(directory):
            path = f"{directory}/{relative.lstrip('/')}"
            if s.g.is_file(path):
                s.remove(path)


@operation("crash-data", "Remove the crash data generated by kexec-tools")
def _crash_data(s: Session, _: Sequence[Step]) -> None:
    if _linux(s):
        for pattern in ("/var/crash/*", "/var/log/dump/*"):
            s.remove_glob(pattern)


@operation("mail-spool", "Remove email from the local mail spool directory")
def _mail_spool(s: Session, _: Sequence[Step]) -> None:
    for pattern in ("/var/spool/mail/*", "/var/mail/*"):
        s.remove_glob(pattern)


@operation("utmp", "Remove the utmp file")
def _utmp(s: Session, _: Sequence[Step]) -> None:
    if _unix(s) and s.exists("/var/run/utmp") and not s.g.is_symlink("/var/run"):
        s.remove("/var/run/utmp")


@operation("passwd-backups", "Remove /etc/passwd- and similar backup files")
def _passwd_backups(s: Session, _: Sequence[Step]) -> None:
    if _linux(s):
        for name in ("passwd", "shadow", "group", "gshadow", "subuid", "subgid"):
            if s.exists(f"/etc/{name}-"):
                s.remove(f"/etc/{name}-")


@operation("ssh-userdir", 'Remove ".ssh" directories in the guest', default=False)
def _ssh_userdir(s: Session, _: Sequence[Step]) -> None:
    if _unix(s):
        for pattern in ("/root/.ssh", "/home/*/.ssh"):
            s.remove_glob(pattern)


@operation("customize", "Customize the guest", order=99)
def _customize(s: Session, steps: Sequence[Step]) -> None:
    apply_steps(s, steps)


def list_operations() -> str:
    """virt-sysprep --list-operations: ``name * description`` (``*`` marks a default operation)."""
    return "".join(
        f"{op.name} {'*' if op.default else ' '} {op.description}\n"
        for op in sorted(OPERATIONS.values(), key=lambda op: op.name)
    )


def default_operations() -> set[str]:
    return {op.name for op in OPERATIONS.values() if op.default}


def parse_operations(spec: str, current: set[str] | None = None) -> set[str]:
    """virt-sysprep's --operations: comma list of names, ``defaults``, ``all``, ``-name`` to remove.

    Successive --operations options accumulate, so ``current`` is the set built so far (empty at first).
    """
    selected = set(current or ())
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        remove = item.startswith("-")
        name = item[1:] if remove else item
        if name == "defaults":
            names = default_operations()
        elif name == "all":
            names = set(OPERATIONS)
        elif name in OPERATIONS:
            names = {name}
        else:
            raise InvalidArgument(
                f"--operations: unknown operation {name!r}; `pyvirt sysprep --list-operations` lists them"
            )
        selected = selected - names if remove else selected | names
    return selected


def sysprep(
    disks: Sequence[Disk],
    *,
    operations: set[str] | None = None,
    steps: Sequence[Step] = (),
    dry_run: bool = False,
    network: bool | None = None,
    quiet: bool = False,
    verbose: bool = False,
) -> Session:
    """Run the selected operations (default: the default ones) on ``disks`` in one appliance launch."""
    selected = default_operations() if operations is None else set(operations)
    unknown = selected - set(OPERATIONS)
    if unknown:
        raise InvalidArgument(f"unknown sysprep operations: {', '.join(sorted(unknown))}")
    if steps and "customize" not in selected:
        raise InvalidArgument("customization options were given but the customize operation is not selected")
    if network is None:
        network = needs_network(steps) if "customize" in selected else False
    check_network(steps, network)
    disks = [Disk(d.path, d.format, readonly=d.readonly or dry_run) for d in disks]
    with launched(disks, network=network, verbose=verbose) as g:
        session = Session(g=g, info=inspect(g, disks[0].path), dry_run=dry_run, network=network, quiet=quiet)
        session.say(f"Examining the guest: {session.info.product_name}")
        for warning in mount_all(g, session.info, readonly=dry_run):
            session.say(f"warning: {warning}")
        for op in sorted((OPERATIONS[name] for name in selected), key=lambda op: (op.order, op.name)):
            session.say(f"Performing {op.name!r} ...")
            op.perform(session, steps)
        session.say("Finishing off")
        g.umount_all()
    return session
