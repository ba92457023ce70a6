#!/usr/bin/env bash
# Runs gatecast's whole test suite: builds the Spin components for wasm32-wasip2 (the end-to-end
# and host tests load the real compiled components), then runs every test of the default members.
# One target dir is shared by both steps, so nothing heavy is built twice.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked --target wasm32-wasip2 --profile wasm \
    -p gatecast-fn-playlist -p gatecast-fn-key -p gatecast-fn-segment -p gatecast-fn-api \
    -p gatecast-fn-ppv-sync
cargo test --locked "$@"
