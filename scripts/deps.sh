#!/usr/bin/env bash
# Installs what Drover builds, tests and runs against, when it is missing (Debian packages).
set -euo pipefail
need=()
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists libpq 2>/dev/null || need+=(libpq-dev)
pkg-config --exists libcurl 2>/dev/null || need+=(libcurl4-openssl-dev)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
# The console's browser tests drive Debian's Chromium (headless).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# The deployment-file test reads YAML with Debian's python3.
/usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 || need+=(python3-yaml)
# Sandboxes run the system's python3, pip and git (the egress tests pip-install through the
# proxy; the repository tests run a git http-backend and push from a sandbox); curl probes.
/usr/bin/python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
command -v git >/dev/null 2>&1 || need+=(git)
command -v curl >/dev/null 2>&1 || need+=(curl)
# Environment packages: sandboxes install npm packages with the system's npm, and the
# registry stand-in builds its .deb with dpkg-deb.
[ -x /usr/bin/npm ] || need+=(npm)
command -v dpkg-deb >/dev/null 2>&1 || need+=(dpkg)
if ((${#need[@]})); then
    echo "deps: installing ${need[*]}"
    sudo=""
    [[ $(id -u) -ne 0 ]] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# The API tests drive `drover api` with the official Anthropic SDK from PyPI, the console's tests
# drive Chromium with Playwright, and the MCP tests run a server from the `mcp` package, in a venv
# of the project's own (pinned, so a new release cannot change what the tests mean; Playwright
# uses the system's Chromium, it downloads none).
root=$(cd "$(dirname "$0")/.." && pwd)
sdk=$root/.drover/sdk
if [[ ! -x $sdk/bin/python ]] || ! "$sdk/bin/python" -c 'import anthropic, standardwebhooks, playwright, mcp, uvicorn' >/dev/null 2>&1; then
    echo "deps: installing anthropic==2.12.0, playwright==1.65.2 and mcp==2.3.0 into .drover/sdk"
    rm -rf "$sdk"
    python3 -m venv "$sdk"
    "$sdk/bin/pip" install -q "anthropic[webhooks]==2.12.0" "playwright==1.65.2" "mcp==2.3.0"
fi
