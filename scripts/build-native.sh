#!/bin/sh
# Builds the quinn engine's native addon offline from Debian's Rust crate sources.
# Needs: cargo/rustc, and the crates as Debian packages (quinn-proto, quinn-udp, rustls, ring, webpki, socket2 come
# with librust-quinn-dev):
#   apt-get install -y librust-quinn-dev librust-tokio-dev librust-rustls-pemfile-dev librust-bytes-dev
# (packages/webtransport/native/quinn/.cargo/config.toml points crates-io at /usr/share/cargo/registry.)
# Output: packages/webtransport/native/quinn/quiver_quinn.node. Without it everything runs on quiche.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
crate="$here/packages/webtransport/native/quinn"
if ! command -v cargo >/dev/null 2>&1; then
  echo "build:native: cargo not found (install rustc and cargo)" >&2
  exit 1
fi
if [ ! -d /usr/share/cargo/registry/quinn-0.9.3 ]; then
  echo "build:native: Debian's quinn crates are missing:" >&2
  echo "  apt-get install -y librust-quinn-dev librust-tokio-dev librust-rustls-pemfile-dev librust-bytes-dev" >&2
  exit 1
fi
cd "$crate"
nice -n 10 cargo build --release --offline
# Copied to a new file then renamed: a process that has the old addon loaded keeps its mapping intact.
cp target/release/libquiver_quinn.so quiver_quinn.node.tmp
mv -f quiver_quinn.node.tmp quiver_quinn.node
echo "build:native: built $crate/quiver_quinn.node"
