#!/usr/bin/env bash
# Builds and installs the `mc` binary from this checkout with `cargo install --locked --path .`.
# Arguments are passed to cargo install; --root DIR (or CARGO_INSTALL_ROOT) installs into DIR/bin
# instead of $CARGO_HOME/bin (~/.cargo/bin). Prints where mc went, and fails if it is not there.
set -euo pipefail

cargo=${CARGO:-cargo}
min_minor=89

# Where cargo will put the binary, by cargo's precedence: --root, CARGO_INSTALL_ROOT, CARGO_HOME.
# A relative --root is taken relative to where the script was started, not to the checkout.
root=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help)
      sed -n '2,4s/^# \{0,1\}//p' "$0"
      exit 0
      ;;
    --root)
      [ $# -ge 2 ] || { echo "error: --root needs a directory" >&2; exit 1; }
      root=$2
      shift 2
      ;;
    --root=*)
      root=${1#--root=}
      shift
      ;;
    *)
      args+=("$1")
      shift
      ;;
  esac
done
if [ -z "$root" ] && [ -n "${CARGO_INSTALL_ROOT:-}" ]; then
  root=$CARGO_INSTALL_ROOT
fi
if [ -n "$root" ]; then
  case "$root" in
    /*) ;;
    *) root="$PWD/$root" ;;
  esac
  args=(--root "$root" "${args[@]}")
  bin_dir="$root/bin"
else
  bin_dir="${CARGO_HOME:-$HOME/.cargo}/bin"
fi
bin="$bin_dir/mc"

cd "$(dirname "$0")"

if ! command -v "$cargo" >/dev/null 2>&1; then
  echo "error: cargo is not installed, so mc cannot be built from source." >&2
  echo "hint: install Rust with rustup (https://rustup.rs), then run ./install.sh again." >&2
  exit 1
fi
version=$(rustc --version | awk '{print $2}')
minor=$(echo "$version" | cut -d. -f2)
if [ "$(echo "$version" | cut -d. -f1)" -lt 1 ] || [ "$minor" -lt "$min_minor" ]; then
  echo "error: rustc $version is too old; mc needs Rust 1.$min_minor or newer (its dependencies kube 5 and serde-saphyr do)." >&2
  echo "hint: run 'rustup update stable', then ./install.sh again." >&2
  exit 1
fi

cat >&2 <<EOF
Building mc (release) into $bin_dir. The first build downloads about 290 crates from crates.io,
needs about 1 GB in ./target, and takes several minutes (docs/performance.md, "Release build").
Cargo's progress follows.
EOF

# Anything cargo installs from now on is not older than this file.
marker=$(mktemp)
trap 'rm -f "$marker"' EXIT
"$cargo" install --locked --path . "${args[@]}"

# cargo may have put it elsewhere (an install.root in a cargo config): say so instead of
# printing a path that does not exist or an older mc found there.
if [ ! -x "$bin" ] || [ "$marker" -nt "$bin" ]; then
  echo "error: cargo install finished, but no new mc is at $bin." >&2
  echo "hint: cargo may be configured with another install root (install.root in .cargo/config.toml); pass --root DIR to choose one." >&2
  exit 1
fi
echo "installed $("$bin" --version) to $bin"
case ":$PATH:" in
  *":$bin_dir:"*) ;;
  *) echo "hint: add $bin_dir to PATH to run 'mc' directly (export PATH=\"$bin_dir:\$PATH\")." ;;
esac
