#!/usr/bin/env bash
# Exit 0 when every folder from / down to $1 lets other users in (o+x): QEMU, running as its own
# user, can then reach files below $1.
set -euo pipefail
dir=$(realpath -m "$1")
while :; do
  [[ -d $dir ]] && [[ $(( 8#$(stat -c %a "$dir") & 1 )) -eq 1 ]] || exit 1
  [[ $dir == / ]] && exit 0
  dir=$(dirname "$dir")
done
