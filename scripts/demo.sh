#!/usr/bin/env bash
# `make demo`: a daemon in a scratch root, the test guest defined and booted, its console, the
# virsh workflow, and a clean shut-down. Nothing outside the scratch root is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/.venv/bin
GUEST_DIR=${GUEST_DIR:-$PWD/.cache/test-guest}
ROOT=$(mktemp -d /tmp/pyvirt-demo.XXXXXX)
chmod 755 "$ROOT"   # like /run and /etc: QEMU runs as its own user and must reach the disk
export PYVIRT_ROOT=$ROOT
cleanup() {
  [[ -n "${DAEMON:-}" ]] && kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null
  for rec in "$ROOT"/run/pyvirt/qemu/*.json; do
    [[ -f $rec ]] && kill -9 "$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' "$rec")" 2>/dev/null
  done
  rm -rf "$ROOT"
}
trap cleanup EXIT
pyvirt() { "$BIN/pyvirt" "$@"; }
step() { printf '\n\033[1m# %s\033[0m\n' "$*"; "$@"; }

echo "== pyvirt demo: scratch root $ROOT"
"$BIN/pyvirtd" >"$ROOT/pyvirtd.log" 2>&1 &
DAEMON=$!
for _ in $(seq 100); do [[ -S $ROOT/run/pyvirt/pyvirt-sock ]] && break; sleep 0.05; done

cp "$GUEST_DIR/disk.qcow2" "$ROOT/demo01.qcow2"
"$BIN/python" - "$ROOT/demo01.xml" "$ROOT/demo01.qcow2" <<'PY'
import sys
sys.path.insert(0, ".")
from pathlib import Path
from tests.support.guest import domain_xml
Path(sys.argv[1]).write_text(domain_xml("demo01", disk=Path(sys.argv[2])))
PY
step pyvirt nodeinfo
step pyvirt define "$ROOT/demo01.xml"
step pyvirt list --all
step pyvirt start demo01
step pyvirt list --all
step pyvirt dominfo demo01
printf '\n\033[1m# pyvirt console demo01   (typing: uname -r; cat /proc/cpuinfo | grep -m1 "model name"; then Ctrl+])\033[0m\n'
( sleep 12; printf 'uname -r; grep -m1 "model name" /proc/cpuinfo\n'; sleep 3; printf '\035' ) \
  | pyvirt console demo01 --history
step pyvirt autostart demo01
step pyvirt shutdown demo01
for _ in $(seq 120); do
  [[ $(pyvirt domstate demo01) == "shut off" ]] && break; sleep 0.5
done
step pyvirt domstate --reason demo01
step pyvirt list --all
step pyvirt undefine demo01
echo
echo "== demo finished"
