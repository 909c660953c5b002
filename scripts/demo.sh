#!/usr/bin/env bash
# The main job on the database in DATABASE_URL (see `make demo`).
set -euo pipefail
drover=${1:-.build/debug/drover}
"$drover" demo
