#!/usr/bin/env bash
# Build pybundle's Go test tools into OUTDIR:
#   OUTDIR/gohost       go-plugin host behaving like the Airflow Go Edge Worker (see README.md)
#   OUTDIR/gorefplugin  minimal real Go go-plugin "dag-bundle" server (defaults example_dags / 0.0)
#   OUTDIR/yamlprobe    gopkg.in/yaml.v3 v3.0.1 encoder probe for the --airflow-metadata manifest
# Usage: build.sh OUTDIR   (idempotent; needs go >= 1.24 and the Go module proxy; exit != 0 on failure)
set -euo pipefail
if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
command -v go >/dev/null || { echo "build.sh: go not found on PATH" >&2; exit 1; }
export GOFLAGS=-mod=mod
cd "$here"
go build -trimpath -o "$out/gohost" .
go build -trimpath -o "$out/gorefplugin" ./refplugin
go build -trimpath -o "$out/yamlprobe" ./yamlprobe
echo "built $out/gohost $out/gorefplugin $out/yamlprobe" >&2
