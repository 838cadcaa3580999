#!/usr/bin/env bash
# The main job on the embedded default: the two-link test bed in network namespaces, and mptun
# in the client namespace. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/mptun.js demo "$@"
