#!/usr/bin/env bash
# Runs every test: unit, simulator, TUN device, and the end-to-end tests in network
# namespaces against the Linux kernel (those need root; in CI they never skip).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm test
