#!/usr/bin/env bash
# Idempotent set-up on Debian 12: system packages, then the project in .venv.
# The venv is built on Debian's /usr/bin/python3 with system site packages, so that Debian's
# libguestfs binding (python3-guestfs) imports inside it.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  qemu-system-x86 qemu-utils           # the emulator and the reference image tool
  busybox-static cpio e2fsprogs kmod   # the test guest's initramfs and ext4 disk
  ovmf                                 # UEFI firmware for <loader>
  dnsmasq-base nftables python3-nftables iproute2   # virtual networks
  isc-dhcp-client                      # DHCP client in the network tests (busybox-static has udhcpc)
  openssh-server openssh-client        # qemu+ssh:// transport and its tests
  libvirt-clients libxml2-utils        # virt-xml-validate (+xmllint): libvirt's own schemas judge our XML
  libguestfs-tools python3-guestfs     # offline guest tools (sysprep, mount, customize)
  linux-image-amd64                    # the kernel libguestfs's appliance boots
  fuse3 debootstrap genisoimage        # guest mounts, template builds, seed ISO checks
  fdisk scrub                          # sfdisk for template disks; scrub for vol-wipe's algorithms
  syslinux mtools                      # tests: test-guest disks that boot by themselves (launch, OVA)
  btrfs-progs                          # a copy-on-write file system for vol-clone --reflink
  python3-venv python3-dev
  python3-pip python3-setuptools python3-wheel   # the offline wheel build with Debian's own tools
  man-db groff-base                    # man -l and groff -ww check the generated man pages
  osinfo-db python3-gi gir1.2-libosinfo-1.0   # pyvirt install: OS facts from osinfo-db through libosinfo
  virtinst libvirt-daemon              # pyvirt install's test oracle: virt-install 4.1, a private libvirtd
  qemu-block-extra                     # QEMU's network block drivers: http(s), nfs, rbd, gluster, iscsi, ssh
  swtpm swtpm-tools                    # emulated TPMs (<tpm><backend type='emulator'>)
  libnettle8                           # GNU Nettle: LUKS Twofish, Serpent and per-sector XTS/CBC/CTR
  tgt                                  # tests: a userspace iSCSI target (tgtd) for iSCSI disks, hostdevs, NVRAM
  xvfb libnss3-tools                   # tests: an X server for SDL displays; certutil for smartcard NSS databases
)
missing=()
for pkg in "${PACKAGES[@]}"; do
  [[ "$pkg" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "error: missing Debian packages (run as root): ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The unprivileged user QEMU runs as (pyvirtd.conf's user/group; the daemon also creates it when missing).
if [[ $(id -u) -eq 0 ]] && ! getent passwd pyvirt-qemu >/dev/null; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
    --comment "pyvirt QEMU processes" pyvirt-qemu
  echo "setup: created the system user pyvirt-qemu"
fi

if [[ ! -x .venv/bin/python ]] || ! .venv/bin/python -c 'import sys; sys.exit(sys.base_prefix != "/usr")' 2>/dev/null; then
  rm -rf .venv
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
stamp=.venv/.installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
fi
# A pyvirt launcher that skips site's start-up scan (see the script).
.venv/bin/python scripts/write-launchers.py
# bash completion: beside the venv's commands, where bash-completion looks for a command's script
# (.venv/bin/pyvirt -> .venv/share/bash-completion/completions/pyvirt); a root install also puts it
# where bash-completion loads every script at start.
install -D -m 0644 contrib/bash-completion/pyvirt .venv/share/bash-completion/completions/pyvirt
if [[ $(id -u) -eq 0 && -d /etc/bash_completion.d ]]; then
  install -m 0644 contrib/bash-completion/pyvirt /etc/bash_completion.d/pyvirt
fi
# The man pages pyvirt(1) and pyvirtd(8), from the command table: `man pyvirt` with .venv/bin on PATH.
.venv/bin/python scripts/make-man.py .venv/share/man
# Byte-compile the sources now, so the CLI starts fast even where PYTHONDONTWRITEBYTECODE is set.
.venv/bin/python -m compileall -q src >/dev/null
echo "setup: ready (.venv/bin/pyvirt, .venv/bin/pyvirtd)"
