#!/bin/sh
# Builds the link emulator (forwarder.c) into scripts/.build/quiver-netem with the machine's cc.
# Idempotent and safe to run concurrently (flock); rebuilds only when the source is newer than the binary.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out_dir="$here/../.build"
out="$out_dir/quiver-netem"
src="$here/forwarder.c"
mkdir -p "$out_dir"
CC=${CC:-cc}
build() {
  if [ -x "$out" ] && [ ! "$src" -nt "$out" ]; then return 0; fi
  tmp="$out.tmp.$$"
  "$CC" -O2 -std=c11 -Wall -Wextra -Werror -o "$tmp" "$src"
  mv -f "$tmp" "$out"
}
if command -v flock >/dev/null 2>&1; then
  exec 9>"$out_dir/.build.lock"
  flock 9
fi
build
echo "$out"
