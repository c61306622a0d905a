"""Template preparation (``customize --prepare-template``), per OS family.

A template VM needs: the kernel on the serial console with classic NIC names (``console=ttyS0,115200n8
net.ifnames=0 biosdevname=0``) and the grub config regenerated; eth0 on DHCP (ifcfg-eth0 on the RHEL
family, ifupdown or systemd-networkd on the Debian family); SELinux disabled where it exists; and a
first-boot unit that grows the root partition and its file system (ext4 or xfs) to fill a disk that
was enlarged for a clone, once. growpart (cloud-utils-growpart) is installed when the appliance has
network; without it the first-boot script falls back to sfdisk, which every distribution has.
"""

from __future__ import annotations

import re

from pyvirt.errors import InvalidArgument
from pyvirt.guest.context import Session

KERNEL_ARGS = ("console=ttyS0,115200n8", "net.ifnames=0", "biosdevname=0")
SERIAL_COMMAND = "serial --speed=115200 --unit=0 --word=8 --parity=no --stop=1"

GROWROOT_SCRIPT_PATH = "/usr/local/sbin/pyvirt-growroot"
GROWROOT_UNIT = "pyvirt-growroot.service"
GROWROOT_DONE = "/var/lib/pyvirt/growroot.done"

GROWROOT_SCRIPT = f"""#!/bin/sh
# Grow the root partition and its file system to the end of the disk, once (installed by pyvirt).
set -u
src=$(findmnt -n -o SOURCE /)
fstype=$(findmnt -n -o FSTYPE /)
dev=$(readlink -f "$src")
name=$(basename "$dev")
if [ -r "/sys/class/block/$name/partition" ]; then
    partnum=$(cat "/sys/class/block/$name/partition")
    disk=/dev/$(basename "$(readlink -f "/sys/class/block/$name/..")")
    if command -v growpart >/dev/null 2>&1; then
        growpart "$disk" "$partnum" || true
    else
        sfdisk --relocate gpt-bak-std "$disk" >/dev/null 2>&1 || true
        echo ", +" | sfdisk --no-reread --force -N "$partnum" "$disk" || true
        partx -u "$disk" || true
    fi
fi
case "$fstype" in
    ext2|ext3|ext4) resize2fs "$dev" ;;
    xfs) xfs_growfs / ;;
    btrfs) btrfs filesystem resize max / ;;
esac
mkdir -p "$(dirname {GROWROOT_DONE})" && touch {GROWROOT_DONE}
"""

# Early-boot ordering (no default dependencies): cloud-init.service is ordered before sysinit.target,
# so a unit after sysinit.target (the default) and before cloud-init.service would be a cycle, which
# systemd breaks by dropping cloud-init's start job.
GROWROOT_UNIT_TEXT = f"""[Unit]
Description=Grow the root partition and file system to fill the disk (first boot only)
DefaultDependencies=no
ConditionPathExists=!{GROWROOT_DONE}
After=local-fs.target
Before=cloud-init.service ssh.service sshd.service sysinit.target shutdown.target
Conflicts=shutdown.target

[Service]
Type=oneshot
ExecStart={GROWROOT_SCRIPT_PATH}
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
"""

DEBIAN_IFUPDOWN_ETH0 = """# eth0 on DHCP (written by pyvirt --prepare-template)
auto eth0
allow-hotplug eth0
iface eth0 inet dhcp
"""

NETWORKD_ETH0 = """# eth0 on DHCP (written by pyvirt --prepare-template)
[Match]
Name=eth0

[Network]
DHCP=yes
"""

RHEL_IFCFG_ETH0 = """# eth0 on DHCP (written by pyvirt --prepare-template)
DEVICE=eth0
NAME=eth0
TYPE=Ethernet
BOOTPROTO=dhcp
ONBOOT=yes
NOZEROCONF=yes
"""


def with_kernel_args(grub_default: str, args: tuple[str, ...] = KERNEL_ARGS) -> str:
    """/etc/default/grub with ``args`` on GRUB_CMDLINE_LINUX (replacing other values of the same keys)
    and grub itself on the serial terminal too."""
    lines = grub_default.splitlines()
    out: list[str] = []
    seen_cmdline = seen_terminal = seen_serial = False
    for line in lines:
        match = re.match(r"^\s*GRUB_CMDLINE_LINUX=(.*)$", line)
        if match:
            seen_cmdline = True
            value = match.group(1).strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            keys = {a.split("=", 1)[0] for a in args}
            words = [w for w in value.split() if w.split("=", 1)[0] not in keys]
            out.append(f'GRUB_CMDLINE_LINUX="{" ".join([*words, *args])}"')
        elif re.match(r"^\s*#?\s*GRUB_TERMINAL=", line):
            if not seen_terminal:
                out.append('GRUB_TERMINAL="console serial"')
            seen_terminal = True
        elif re.match(r"^\s*#?\s*GRUB_SERIAL_COMMAND=", line):
            if not seen_serial:
                out.append(f'GRUB_SERIAL_COMMAND="{SERIAL_COMMAND}"')
            seen_serial = True
        else:
            out.append(line)
    if not seen_cmdline:
        out.append(f'GRUB_CMDLINE_LINUX="{" ".join(args)}"')
    if not seen_terminal:
        out.append('GRUB_TERMINAL="console serial"')
    if not seen_serial:
        out.append(f'GRUB_SERIAL_COMMAND="{SERIAL_COMMAND}"')
    return "\n".join(out) + "\n"


def selinux_disabled(config: str) -> str:
    lines = ["SELINUX=disabled" if re.match(r"^\s*SELINUX=", line) else line for line in config.splitlines()]
    if not any(line == "SELINUX=disabled" for line in lines):
        lines.append("SELINUX=disabled")
    return "\n".join(lines) + "\n"


def _first_existing(s: Session, paths: tuple[str, ...]) -> str | None:
    return next((p for p in paths if s.exists(p)), None)


def _grub(s: Session) -> None:
    current = s.read_if_exists("/etc/default/grub")
    if current is None:
        s.mkdir("/etc/default")
        current = 'GRUB_DEFAULT=0\nGRUB_TIMEOUT=1\nGRUB_CMDLINE_LINUX_DEFAULT=""\n'
    s.write("/etc/default/grub", with_kernel_args(current))
    from pyvirt.guest.customize import run_in_guest

    if s.info.family == "rhel" and s.exists("/usr/sbin/grubby"):
        run_in_guest(s, f"grubby --update-kernel=ALL --args='{' '.join(KERNEL_ARGS)}'", what="grubby")
    mkconfig = _first_existing(
        s, ("/usr/sbin/update-grub", "/usr/sbin/grub2-mkconfig", "/usr/sbin/grub-mkconfig")
    )
    if mkconfig is None:
        s.say("  no grub in the guest: only /etc/default/grub updated")
        return
    if mkconfig.endswith("update-grub"):
        run_in_guest(s, "update-grub", what="update-grub")
        return
    target = _first_existing(s, ("/boot/grub2/grub.cfg", "/boot/grub/grub.cfg")) or (
        "/boot/grub2/grub.cfg" if "grub2" in mkconfig else "/boot/grub/grub.cfg"
    )
    run_in_guest(s, f"{mkconfig} -o {target}", what=mkconfig.rsplit("/", 1)[1])


def _enable_unit(s: Session, unit: str, unit_path: str, target: str = "multi-user.target") -> None:
    wants = f"/etc/systemd/system/{target}.wants"
    s.mkdir(wants)
    s.symlink(unit_path, f"{wants}/{unit}")


def _systemd_unit_dir(s: Session) -> str:
    return "/usr/lib/systemd/system" if s.is_dir("/usr/lib/systemd/system") else "/lib/systemd/system"


def _debian_network(s: Session) -> None:
    interfaces = s.read_if_exists("/etc/network/interfaces")
    has_ifupdown = interfaces is not None or s.exists("/sbin/ifup") or s.exists("/usr/sbin/ifup")
    if has_ifupdown:
        s.mkdir("/etc/network/interfaces.d")
        s.write("/etc/network/interfaces.d/eth0", DEBIAN_IFUPDOWN_ETH0)
        text = interfaces or "auto lo\niface lo inet loopback\n"
        if not re.search(r"^\s*source(-directory)?\s+(/etc/network/)?interfaces\.d", text, re.M):
            text = text.rstrip("\n") + "\n\nsource /etc/network/interfaces.d/*\n"
        # An eth0/ens* stanza in the main file would fight the one above: drop the old NIC stanzas.
        s.write("/etc/network/interfaces", _drop_nic_stanzas(text))
        return
    s.mkdir("/etc/systemd/network")
    s.write("/etc/systemd/network/10-eth0.network", NETWORKD_ETH0)
    _enable_unit(s, "systemd-networkd.service", f"{_systemd_unit_dir(s)}/systemd-networkd.service")


def _drop_nic_stanzas(text: str) -> str:
    out: list[str] = []
    skipping = False
    for line in text.splitlines():
        words = line.split()
        if words and words[0] in ("auto", "allow-hotplug", "iface", "mapping", "source", "source-directory"):
            skipping = (
                words[0] in ("auto", "allow-hotplug", "iface", "mapping")
                and len(words) > 1
                and words[1] != "lo"
            )
        if not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


def _rhel_network(s: Session) -> None:
    s.mkdir("/etc/sysconfig/network-scripts")
    for old in s.glob("/etc/sysconfig/network-scripts/ifcfg-*"):
        if not old.endswith(("/ifcfg-lo", "/ifcfg-eth0")):
            s.remove(old)
    s.write("/etc/sysconfig/network-scripts/ifcfg-eth0", RHEL_IFCFG_ETH0)
    network = s.read_if_exists("/etc/sysconfig/network") or "NETWORKING=yes\n"
    if "NOZEROCONF=" not in network:
        s.write("/etc/sysconfig/network", network.rstrip("\n") + "\nNOZEROCONF=yes\n")


def _selinux(s: Session) -> None:
    config = s.read_if_exists("/etc/selinux/config")
    if config is not None:
        s.write("/etc/selinux/config", selinux_disabled(config))


def _growroot(s: Session) -> None:
    has_growpart = s.exists("/usr/bin/growpart") or s.exists("/usr/sbin/growpart")
    if not has_growpart and s.network and s.info.package_management != "unknown":
        from pyvirt.guest.customize import Install

        package = "cloud-guest-utils" if s.info.family == "debian" else "cloud-utils-growpart"
        Install((package,)).apply(s)
    elif not has_growpart:
        s.say("  growpart not installed (no network): the first-boot unit uses sfdisk instead")
    s.mkdir("/usr/local/sbin")
    s.write(GROWROOT_SCRIPT_PATH, GROWROOT_SCRIPT, mode=0o755)
    s.mkdir("/etc/systemd/system")
    unit_path = f"/etc/systemd/system/{GROWROOT_UNIT}"
    s.write(unit_path, GROWROOT_UNIT_TEXT)
    _enable_unit(s, GROWROOT_UNIT, unit_path)
    if s.exists(GROWROOT_DONE):
        s.remove(GROWROOT_DONE)


def prepare_template(s: Session) -> None:
    """Apply the template preparation for the guest's OS family."""
    family = s.info.family
    if family not in ("debian", "rhel"):
        raise InvalidArgument(
            f"--prepare-template supports the Debian and RHEL families; this guest is {s.info.product_name} "
            f"({s.info.distro})"
        )
    s.say("  kernel command line and grub")
    _grub(s)
    s.say("  eth0 on DHCP")
    if family == "debian":
        _debian_network(s)
    else:
        _rhel_network(s)
    _selinux(s)
    s.say("  first-boot root growth")
    _growroot(s)
