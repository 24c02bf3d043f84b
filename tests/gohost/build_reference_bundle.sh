#!/usr/bin/env bash
# Build the go-sdk's own example bundle (example/bundle of github.com/apache/airflow/go-sdk)
# from the last go-sdk version that still has the go-plugin mode, so tests can compare
# pybundle's outputs byte for byte with a real Go bundle binary.
#
# Usage: build_reference_bundle.sh OUTDIR
# Env:   GOSDK_VERSION   go-sdk version to use (default: newest v1.0.0-beta* that has
#                        pkg/bundles/shared/handshake.go, bundle/bundlev1/bundlev1client and example/bundle)
#        BUNDLE_NAME, BUNDLE_VERSION  optional -ldflags -X main.bundleName / main.bundleVersion
#                        (upstream defaults: example_dags / 0.0)
# Output: OUTDIR/go-example-bundle and OUTDIR/go-example-bundle.gosdk-version (the version used).
# The example is built as a package of a throw-away main module that requires the go-sdk, the way a
# bundle author builds; so sdk.version in the dumps is the go-sdk version, not "(devel)".
# Exit:  0 built; 2 usage; 3 the go-sdk module (or no plugin-era version of it) is not obtainable
#        from the module proxy -> tests should skip; 1 any other failure.
set -euo pipefail
if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
command -v go >/dev/null || { echo "build_reference_bundle.sh: go not found on PATH" >&2; exit 1; }
mkdir -p "$1"
out="$(cd "$1" && pwd)"
mod=github.com/apache/airflow/go-sdk
export GOFLAGS=-mod=mod
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"

unavailable() {
  echo "build_reference_bundle.sh: $*" >&2
  exit 3
}

# has_plugin_mode VERSION -> prints the module dir if that version has the go-plugin mode and the example
has_plugin_mode() {
  local dir
  dir="$(go mod download -json "$mod@$1" 2>/dev/null | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')" || return 1
  [ -n "$dir" ] || return 1
  [ -f "$dir/pkg/bundles/shared/handshake.go" ] || return 1
  [ -d "$dir/bundle/bundlev1/bundlev1client" ] || return 1
  [ -f "$dir/example/bundle/main.go" ] || return 1
  printf '%s\n' "$dir"
}

version="${GOSDK_VERSION:-}"
if [ -z "$version" ]; then
  versions="$(go list -m -versions "$mod" 2>"$work/list.err")" ||
    unavailable "cannot list $mod versions: $(tr '\n' ' ' <"$work/list.err")"
  for v in $(printf '%s\n' $versions | sed 1d | grep -E '^v1\.0\.0-beta[0-9]+$' | sort -t a -k 2 -n -r); do
    if has_plugin_mode "$v" >/dev/null; then
      version="$v"
      break
    fi
  done
  [ -n "$version" ] || unavailable "no v1.0.0-beta* version of $mod with the go-plugin mode and example/bundle (listed: ${versions#$mod})"
else
  has_plugin_mode "$version" >/dev/null ||
    unavailable "$mod@$version is not obtainable or lacks the go-plugin mode / example/bundle"
fi

cat >go.mod <<EOM
module gosdk_reference_bundle

go 1.24.0

require $mod $version
EOM
ldflags=""
[ -n "${BUNDLE_NAME:-}" ] && ldflags="$ldflags -X 'main.bundleName=$BUNDLE_NAME'"
[ -n "${BUNDLE_VERSION+set}" ] && ldflags="$ldflags -X 'main.bundleVersion=${BUNDLE_VERSION}'"
go build -trimpath -ldflags="$ldflags" -o "$out/go-example-bundle" "$mod/example/bundle"
printf '%s\n' "$version" >"$out/go-example-bundle.gosdk-version"
echo "built $out/go-example-bundle from $mod@$version" >&2
