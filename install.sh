#!/usr/bin/env bash
# Builds and installs the `mc` binary from this checkout into ~/.cargo/bin (or $CARGO_HOME/bin).
set -euo pipefail
cd "$(dirname "$0")"

min_minor=85
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo is not installed, so mc cannot be built from source." >&2
  echo "hint: install Rust with rustup (https://rustup.rs), then run ./install.sh again." >&2
  exit 1
fi
version=$(rustc --version | awk '{print $2}')
minor=$(echo "$version" | cut -d. -f2)
if [ "$(echo "$version" | cut -d. -f1)" -lt 1 ] || [ "$minor" -lt "$min_minor" ]; then
  echo "error: rustc $version is too old; mc needs Rust 1.$min_minor or newer (edition 2024)." >&2
  echo "hint: run 'rustup update stable', then ./install.sh again." >&2
  exit 1
fi

cargo install --locked --path . "$@"
bin="${CARGO_HOME:-$HOME/.cargo}/bin/mc"
echo "installed $("$bin" --version) to $bin"
case ":$PATH:" in
  *":$(dirname "$bin"):"*) ;;
  *) echo "hint: add $(dirname "$bin") to PATH to run 'mc' directly." ;;
esac
