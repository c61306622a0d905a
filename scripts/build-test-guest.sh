#!/usr/bin/env bash
# Build (or reuse) pyvirt's test guest in GUEST_DIR: Debian's kernel, a busybox-static initramfs, and
# an ext4 qcow2 disk holding the same tree. Idempotent: a stamp keyed on this script and
# scripts/test-guest/* makes a cached run a no-op. Usage: build-test-guest.sh [GUEST_DIR] [--force]
set -euo pipefail
umask 022

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
force=0
out=
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h | --help) sed -n '2,4s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) out=$arg ;;
  esac
done
out=${out:-${GUEST_DIR:-$here/../.cache/test-guest}}
DISK_SIZE=64M
# quiet/loglevel keep the console for the protocol; the rest skips work that is slow under TCG
# (initcall_debug showed ~0.5 s in the KDF108 self-test and ~0.35 s in the W+X page-table check).
CMDLINE="console=ttyS0,115200 quiet loglevel=4 no_timer_check tsc=reliable cryptomgr.notests"
CMDLINE+=" rodata=off initcall_blacklist=crypto_kdf108_init"
DISK_CMDLINE="$CMDLINE root=/dev/vda rw"
ARTIFACTS=(vmlinuz vmlinux initrd.img disk.qcow2 manifest.json)

log() { echo "test-guest: $*" >&2; }
die() { echo "test-guest: error: $*" >&2; exit 1; }

# The cache key: this script and every helper file, in a fixed order.
key=$(cd "$here" && LC_ALL=C sha256sum build-test-guest.sh $(LC_ALL=C find test-guest -type f | sort) \
  | sha256sum | cut -c1-16)

cached() {
  [[ $force -eq 0 && -f "$out/.stamp" && "$(cat "$out/.stamp")" == "$key" ]] || return 1
  local f
  for f in "${ARTIFACTS[@]}"; do [[ -s "$out/$f" ]] || return 1; done
}

mkdir -p "$out"
out=$(cd "$out" && pwd)
if cached; then
  log "cached in $out"
  exit 0
fi

# One builder at a time (parallel test runs share the directory); re-check once we hold the lock.
exec 9>"$out/.lock"
flock 9
if cached; then
  log "cached in $out (built by another process)"
  exit 0
fi
rm -rf "$out"/.build.* # left by an interrupted build

# --- host tools ---------------------------------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
need_pkgs=()
for pkg in busybox-static cpio e2fsprogs kmod qemu-utils; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$pkg")
done
apt_updated=0
if ((${#need_pkgs[@]})); then
  [[ $(id -u) -eq 0 ]] || die "missing Debian packages (run as root): ${need_pkgs[*]}"
  log "installing ${need_pkgs[*]}"
  apt-get update -q >&2 && apt_updated=1
  apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >&2
fi
busybox=/bin/busybox # busybox-static's binary (statically linked: no libraries needed in the guest)
export PATH="$PATH:/usr/sbin:/sbin"

# --- the kernel package -------------------------------------------------------------------------
kpkg_name() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}'; }
kpkg=$(kpkg_name || true)
if [[ -z "$kpkg" && $apt_updated -eq 0 ]]; then
  log "apt-get update (linux-image-amd64 unknown to apt)"
  apt-get update -q >&2
  kpkg=$(kpkg_name || true)
fi
[[ -n "$kpkg" ]] || die "cannot resolve linux-image-amd64 to a kernel package (apt-cache depends)"

dl="$out/downloads"
mkdir -p "$dl"
deb=$(ls "$dl/${kpkg}_"*_amd64.deb 2>/dev/null | head -n1 || true)
if [[ -z "$deb" ]]; then
  log "downloading $kpkg"
  # apt drops to user _apt for downloads; let it write here, else it warns and downloads as root.
  chmod 0777 "$dl" 2>/dev/null || true
  (cd "$dl" && apt-get download -q "$kpkg" >&2) || die "apt-get download $kpkg failed"
  chmod 0755 "$dl" 2>/dev/null || true
  deb=$(ls "$dl/${kpkg}_"*_amd64.deb 2>/dev/null | head -n1 || true)
  [[ -n "$deb" ]] || die "apt-get download $kpkg left no .deb in $dl"
fi
find "$dl" -name 'linux-image-*.deb' ! -path "$deb" -delete # older kernels
# qemu-guest-agent: Debian's binary, run in the guest with the host's copies of its libraries (the
# host has them: qemu-system depends on the same glib, libnuma, liburing and libudev).
qga_deb=$(ls "$dl"/qemu-guest-agent_*_amd64.deb 2>/dev/null | head -n1 || true)
if [[ -z "$qga_deb" ]]; then
  log "downloading qemu-guest-agent"
  chmod 0777 "$dl" 2>/dev/null || true
  (cd "$dl" && apt-get download -q qemu-guest-agent >&2) || die "apt-get download qemu-guest-agent failed"
  chmod 0755 "$dl" 2>/dev/null || true
  qga_deb=$(ls "$dl"/qemu-guest-agent_*_amd64.deb 2>/dev/null | head -n1 || true)
  [[ -n "$qga_deb" ]] || die "apt-get download qemu-guest-agent left no .deb in $dl"
fi
kpkg_version=$(dpkg-deb -f "$deb" Version)

work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "unpacking $(basename "$deb")"
dpkg -x "$deb" "$work/kpkg"
dpkg -x "$qga_deb" "$work/qga"
kver=$(ls "$work/kpkg/lib/modules")
[[ $(wc -w <<<"$kver") -eq 1 ]] || die "expected one module tree in $deb, found: $kver"
kmods="$work/kpkg/lib/modules/$kver"
depmod -b "$work/kpkg" "$kver"

# --- modules: resolve dependencies (and soft dependencies) in load order ------------------------
load_list=()
declare -A seen=()
while read -r name; do
  name=${name%%#*}
  name=${name//[[:space:]]/}
  [[ -n "$name" ]] || continue
  optional=0
  if [[ $name == \?* ]]; then optional=1; name=${name#\?}; fi
  if ! deps=$(modprobe -d "$work/kpkg" -S "$kver" --show-depends "$name" 2>/dev/null); then
    ((optional)) && { log "module $name: not in this kernel, skipped"; continue; }
    die "module $name: not found in $kver"
  fi
  while read -r verb path _; do
    [[ $verb == insmod ]] || continue # "builtin NAME": nothing to load
    rel=${path#"$kmods/"}
    [[ -n "${seen[$rel]:-}" ]] && continue
    seen[$rel]=1
    load_list+=("$rel")
  done <<<"$deps"
done <"$here/test-guest/modules"

# --- vmlinux: the same kernel, uncompressed, booted through its PVH entry point ------------------
# Under TCG, decompressing Debian's xz bzImage takes 3-5 s of every boot; QEMU loads an ELF vmlinux
# with a PVH note directly (-kernel), which halves boot-to-ready. The bzImage stays for firmware paths.
le32() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }
extract_vmlinux() {
  local bz=$1 dest=$2 setup_sects offset length magic
  grep -q '^CONFIG_PVH=y' "$work/kpkg/boot/config-$kver" || die "$kver has no PVH entry point (CONFIG_PVH)"
  setup_sects=$(od -An -tu1 -j $((0x1f1)) -N1 "$bz" | tr -d ' ')
  ((setup_sects)) || setup_sects=4
  offset=$(((setup_sects + 1) * 512 + $(le32 "$bz" $((0x248)))))
  length=$(le32 "$bz" $((0x24c)))
  magic=$(od -An -tx1 -j "$offset" -N4 "$bz" | tr -d ' ')
  local unpack
  case "$magic" in
    # The payload ends with the uncompressed size (4 bytes) after the stream: decompress one stream only.
    fd377a58) unpack=(xz -dc --single-stream) ;;
    1f8b*) unpack=(gzip -dcq) ;;
    28b52ffd) unpack=(zstd -dcq) ;;
    *) die "bzImage payload compression not handled (magic $magic)" ;;
  esac
  dd if="$bz" iflag=skip_bytes,count_bytes skip="$offset" count="$length" bs=64K status=none | "${unpack[@]}" >"$dest" || [[ ${unpack[0]} != xz ]] \
    || die "cannot decompress the kernel payload (${unpack[*]})"
  [[ $(od -An -tx1 -N4 "$dest" | tr -d ' ') == 7f454c46 ]] || die "decompressed kernel is not an ELF file"
}

# --- the guest tree (shared by the initramfs and the disk) --------------------------------------
tree="$work/tree"
mkdir -p "$tree"/{bin,sbin,usr/bin,usr/sbin,etc/acpi/PWRF,etc/pyvirt,dev,proc,sys,run,tmp,root,newroot,mnt}
mkdir -p "$tree/lib/modules/$kver" "$tree/var/log"
chmod 1777 "$tree/tmp"
chmod 0700 "$tree/root"
cp "$busybox" "$tree/bin/busybox"
while read -r applet; do
  [[ -e "$tree/$applet" ]] || ln -s /bin/busybox "$tree/$applet"
done < <("$busybox" --list-full)
install -m 0755 "$here/test-guest/init" "$tree/init"
ln -sf /init "$tree/sbin/init"
install -m 0644 "$here/test-guest/inittab" "$tree/etc/inittab"
install -m 0755 "$here/test-guest/udhcpc.script" "$tree/etc/pyvirt/udhcpc.script"
install -m 0755 "$here/test-guest/power-button" "$tree/etc/acpi/PWRF/00000080"
install -m 0755 "$here/test-guest/shutdown" "$tree/sbin/shutdown"
install -m 0755 "$work/qga/usr/sbin/qemu-ga" "$tree/usr/sbin/qemu-ga"
ldd "$work/qga/usr/sbin/qemu-ga" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/lib64\// {print $1}' \
  | while read -r lib; do install -D -m 0755 "$(readlink -f "$lib")" "$tree$lib"; done
[[ -e "$tree/lib64/ld-linux-x86-64.so.2" ]] || die "qemu-ga: the dynamic loader was not copied"
printf 'PRETTY_NAME="pyvirt test guest"\nNAME="pyvirt-guest"\nID=pyvirt-guest\nVERSION_ID="1"\n' >"$tree/etc/os-release"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$tree/etc/passwd"
printf 'root:*:19000:0:99999:7:::\n' >"$tree/etc/shadow"
chmod 0600 "$tree/etc/shadow"
printf 'root:x:0:\ntty:x:5:\n' >"$tree/etc/group"
printf '127.0.0.1 localhost\n127.0.1.1 pyvirt-guest\n' >"$tree/etc/hosts"
printf 'pyvirt-guest\n' >"$tree/etc/hostname"
: >"$tree/etc/resolv.conf"
printf '%s\n' "$kver" >"$tree/etc/pyvirt/kernel-version"
# The kernel opens /dev/console before running /init; without it /init starts with no stdio.
if [[ $(id -u) -eq 0 ]]; then
  mknod -m 0600 "$tree/dev/console" c 5 1
  mknod -m 0666 "$tree/dev/null" c 1 3
fi

for rel in "${load_list[@]}"; do
  install -D -m 0644 "$kmods/$rel" "$tree/lib/modules/$kver/$rel"
done
printf '%s\n' "${load_list[@]}" >"$tree/lib/modules/$kver/pyvirt-modules"
cp "$kmods/modules.builtin" "$kmods/modules.builtin.modinfo" "$kmods/modules.order" "$tree/lib/modules/$kver/"
depmod -b "$tree" "$kver" # so that modprobe works inside the guest too

# --- artifacts ----------------------------------------------------------------------------------
cp "$work/kpkg/boot/vmlinuz-$kver" "$work/vmlinuz"
extract_vmlinux "$work/vmlinuz" "$work/vmlinux"

touch "$tree/etc/pyvirt/initramfs" # marks the initramfs copy: /init switch_roots when root= is given
(cd "$tree" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9 -n >"$work/initrd.img"
rm "$tree/etc/pyvirt/initramfs"

truncate -s "$DISK_SIZE" "$work/rootfs.raw"
mkfs.ext4 -q -F -L pyvirt-root -E root_owner=0:0 -d "$tree" "$work/rootfs.raw"
qemu-img convert -q -f raw -O qcow2 "$work/rootfs.raw" "$work/disk.qcow2"
rm "$work/rootfs.raw"
disk_vsize=$(qemu-img info --output=json "$work/disk.qcow2" | awk -F'[:,]' '/"virtual-size"/ {gsub(/ /, "", $2); print $2; exit}')

size() { stat -c %s "$1"; }
json_list() { local s="" m; for m in "$@"; do s+="${s:+, }\"$m\""; done; printf '[%s]' "$s"; }
cat >"$work/manifest.json" <<JSON
{
  "format": 1,
  "dir": "$out",
  "kernel": "vmlinux",
  "vmlinuz": "vmlinuz",
  "initrd": "initrd.img",
  "disk": "disk.qcow2",
  "disk_format": "qcow2",
  "disk_virtual_size": $disk_vsize,
  "disk_root": "/dev/vda",
  "kernel_version": "$kver",
  "kernel_package": "$kpkg",
  "kernel_package_version": "$kpkg_version",
  "cmdline": "$CMDLINE",
  "disk_cmdline": "$DISK_CMDLINE",
  "ready_marker": "pyvirt-guest: ready",
  "prompt": "guest# ",
  "modules": $(json_list "${load_list[@]}"),
  "sizes": {"vmlinux": $(size "$work/vmlinux"), "vmlinuz": $(size "$work/vmlinuz"), "initrd.img": $(size "$work/initrd.img"), "disk.qcow2": $(size "$work/disk.qcow2")},
  "stamp": "$key"
}
JSON

rm -f "$out/.stamp"
for f in "${ARTIFACTS[@]}"; do mv -f "$work/$f" "$out/$f"; done
printf '%s\n' "$key" >"$out/.stamp"
rm -rf "$dl" # the .debs (70 MB) are only needed to build; a rebuild downloads them again
log "built in $out: kernel $kver, initrd $(size "$out/initrd.img") bytes, disk $(size "$out/disk.qcow2") bytes"
