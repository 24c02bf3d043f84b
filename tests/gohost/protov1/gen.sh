#!/usr/bin/env bash
# Regenerate bundle.pb.go / bundle_grpc.pb.go (the results are checked in; build.sh does not run this).
# Needs: python with grpcio-tools (libprotoc >= 27), protoc-gen-go v1.36.6, protoc-gen-go-grpc v1.5.1.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="${GOHOST_TOOLS:-$(mktemp -d)}"
GOBIN="$tools" GOFLAGS=-mod=mod go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.6
GOBIN="$tools" GOFLAGS=-mod=mod go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
py="${PYTHON:-python3}"
cd "$here"
PATH="$tools:$PATH" "$py" -m grpc_tools.protoc -I. \
  --go_out=. --go_opt=paths=source_relative \
  --go-grpc_out=. --go-grpc_opt=paths=source_relative \
  bundle.proto
