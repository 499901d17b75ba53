#!/usr/bin/env bash
# Checks the declared minimum supported Rust version: `./scripts/msrv.sh`
# (CI runs it).
#
# Checks the library with every feature (`cargo check --lib --all-features`,
# whatever `--all-features` is at the time) on exactly the version that
# `rust-version` in Cargo.toml names, with the dependencies that version
# resolves to, as a user of the crate on that version gets them:
#
# - the toolchain: Debian's `rustc-web`/`cargo-web` packages for 1.85
#   (installed with apt-get when missing), or a rustup toolchain of that
#   version when one is installed;
# - the package is copied to `$CARGO_TARGET_DIR/msrv/package` (default
#   `target/`) without its dev-dependencies (tests, examples and benchmarks
#   may need a newer Rust; users never build them), and that copy gets its
#   own Cargo.lock from the MSRV-aware resolver
#   (`CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback`): the newest
#   versions whose `rust-version` allows the declared one. The repository's
#   Cargo.lock is neither used nor changed.
#
# Then documents the library with that version's rustdoc (doc comments too
# must not need a newer Rust). Warnings are errors in both, as in CI.
#
# Prints the toolchain, the features and the versions held back below
# Cargo.lock's, and exits non-zero when either step fails.
# Idempotent: a second run rebuilds nothing that did not change.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

msrv=$(sed -n 's/^rust-version *= *"\([0-9][0-9.]*\)".*/\1/p' Cargo.toml | head -n 1)
if [ -z "$msrv" ]; then
  echo "msrv: Cargo.toml declares no rust-version" >&2
  exit 1
fi

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Sets `cargo`, `rustc` and `rustdoc` to the toolchain of version $msrv.
find_toolchain() {
  case "$msrv" in
    1.85 | 1.85.0)
      cargo=/usr/bin/cargo rustc=/usr/bin/rustc rustdoc=/usr/bin/rustdoc
      if ! "$rustc" --version 2>/dev/null | grep -q '^rustc 1\.85\.' ||
        ! "$cargo" --version 2>/dev/null | grep -q '^cargo 1\.85\.'; then
        # Debian bookworm's 1.85 (1.85.0+dfsg3-1~deb12u3), not the newer
        # candidate from bookworm-security.
        local version pkg packages=()
        debian_185() {
          apt-cache madison cargo-web 2>/dev/null |
            awk -F'|' '$2 ~ /^ *1\.85\./ { gsub(/ /, "", $2); print $2; exit }'
        }
        version=$(debian_185)
        if [ -z "$version" ]; then
          as_root apt-get update -qq
          version=$(debian_185)
        fi
        if [ -z "$version" ]; then
          echo "msrv: apt-get finds no cargo-web 1.85 (Debian bookworm's Rust 1.85)" >&2
          exit 1
        fi
        echo "msrv: Rust 1.85 not found: installing Debian's rustc-web and cargo-web $version with apt-get" >&2
        for pkg in cargo-web rustc-web libstd-rust-web-dev libstd-rust-web-1.85; do
          packages+=("$pkg=$version")
        done
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
          -o DPkg::Lock::Timeout=300 "${packages[@]}" >/dev/null
      fi
      ;;
    *)
      # A rustup toolchain of that version (rustup cannot download others here).
      local toolchain
      toolchain=$(rustup toolchain list 2>/dev/null | sed -n "s/^\(${msrv//./\\.}\(\.[0-9]*\)\{0,1\}-[^ ]*\).*/\1/p" | head -n 1)
      if [ -z "$toolchain" ]; then
        echo "msrv: no toolchain for Rust $msrv: Debian packages 1.85, rustup has: $(rustup toolchain list 2>/dev/null | tr '\n' ' ')" >&2
        exit 1
      fi
      cargo=$(rustup which --toolchain "$toolchain" cargo)
      rustc=$(rustup which --toolchain "$toolchain" rustc)
      rustdoc=$(rustup which --toolchain "$toolchain" rustdoc)
      ;;
  esac
  if ! "$rustc" --version | grep -q "^rustc ${msrv//./\\.}[. ]"; then
    echo "msrv: $rustc is $("$rustc" --version), not $msrv" >&2
    exit 1
  fi
}
find_toolchain

target_dir=${CARGO_TARGET_DIR:-$root/target}
case "$target_dir" in /*) ;; *) target_dir=$root/$target_dir ;; esac
work=$target_dir/msrv
copy=$work/package

# The package without its dev-dependencies, as its own workspace. `cp -p`
# keeps the times, so unchanged sources are not rebuilt.
rm -rf "$copy"
mkdir -p "$copy"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' file; do
      if [ -f "$file" ]; then printf '%s\0' "$file"; fi
    done |
    xargs -0 cp -p --parents -t "$copy"
else
  tar -cf - --exclude=./target --exclude=./.git --exclude=./fuzz/target . | tar -xpf - -C "$copy"
fi
awk '
  /^[[:space:]]*\[/ {
    skip = ($0 ~ /^[[:space:]]*\[(target\.[^]]*\.)?(dev-dependencies|dev_dependencies)(\.[^]]*)?\][[:space:]]*(#.*)?$/)
  }
  !skip
' Cargo.toml >"$copy/Cargo.toml"
touch -r Cargo.toml "$copy/Cargo.toml"
if ! grep -q '^\[workspace\]' "$copy/Cargo.toml"; then
  printf '\n[workspace]\n' >>"$copy/Cargo.toml"
fi

features=$(awk '
  /^\[features\]/ { in_features = 1; next }
  /^\[/ { in_features = 0 }
  in_features && /^[A-Za-z0-9_-]+[[:space:]]*=/ { sub(/[[:space:]]*=.*/, ""); printf "%s ", $0 }
' Cargo.toml)

msrv_cargo() {
  # The same RUSTFLAGS for both steps, so that `doc` reuses what `check` built.
  (cd "$copy" && PATH="$(dirname "$rustc"):$PATH" RUSTC="$rustc" RUSTDOC="$rustdoc" \
    RUSTFLAGS="-D warnings" RUSTDOCFLAGS="-D warnings" \
    CARGO_TARGET_DIR="$work/target" "$cargo" "$@")
}

echo "msrv: rust-version = $msrv; $("$cargo" --version), $("$rustc" --version)"
echo "msrv: resolving the library's dependencies for Rust $msrv (MSRV-aware resolver, no dev-dependencies)"
CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback msrv_cargo generate-lockfile --quiet

# Versions that differ from the repository's Cargo.lock (dev-dependencies aside).
held_back=$(awk '
  FNR == 1 { file++; name = "" }
  /^\[\[package\]\]/ { name = "" }
  /^name = / { name = $3; gsub(/"/, "", name) }
  /^version = / && name != "" {
    version = $3; gsub(/"/, "", version)
    if (file == 1) { main[name] = main[name] " " version }
    else if (name in main && index(main[name] " ", " " version " ") == 0) {
      printf "  %s %s (Cargo.lock:%s)\n", name, version, main[name]
    }
  }
' Cargo.lock "$copy/Cargo.lock")
if [ -n "$held_back" ]; then
  echo "msrv: resolved for Rust $msrv, unlike Cargo.lock:"
  echo "$held_back"
fi

fail() {
  echo "msrv: $1 on Rust $msrv, the declared rust-version" >&2
  echo "msrv: the dependencies it used are in $copy/Cargo.lock" >&2
  exit 1
}
echo "msrv: cargo check --lib --all-features (features: ${features% }) on Rust $msrv, warnings denied"
msrv_cargo check --lib --all-features --locked ||
  fail "the library does not build"
echo "msrv: cargo doc --no-deps --lib --all-features on Rust $msrv, warnings denied"
msrv_cargo doc --no-deps --lib --all-features --locked --quiet ||
  fail "the library's documentation does not build"
echo "msrv: the library and its documentation build on Rust $msrv with every feature"
