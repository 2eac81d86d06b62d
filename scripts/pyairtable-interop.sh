#!/usr/bin/env bash
# Drives the real pyairtable (from PyPI, unchanged) against `pyat serve`: CRUD, batches, upserts,
# pages, formulas built with pyairtable.formulas, sort, fields, views, cellFormat, typecast, the ORM,
# the meta API and collaborators, attachments by URL, webhooks (payloads, pings checked with
# WebhookNotification.from_request), 25 threads of batch writes at once, and 429 handling with
# --airtable-limits.
# The suite (scripts/pyairtable/) starts its own servers on ephemeral ports in throwaway data
# directories and stops them on every exit path. Exits non-zero if any test fails. CI runs it.
#
# Usage: scripts/pyairtable-interop.sh [--pyat PATH] [-- EXTRA PYTEST ARGS...]
#   --pyat   the pyat binary (default: the debug build, $(swift build --show-bin-path)/pyat)
#   after -- passed to pytest, e.g. -- -k orm -x
#
# pyairtable 3.5.0.post1, pytest and pytest-timeout are installed from PyPI into a virtual environment
# under .build/ (reused while the pins match). Each test has 300 s; the whole run 900 s.
set -euo pipefail

readonly pins=("pyairtable==3.5.0.post1" "pytest==8.4.2" "pytest-timeout==2.4.0")
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pyat=""
extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
    --pyat)
        pyat="${2:?--pyat needs a path}"
        shift 2
        ;;
    --)
        shift
        extra=("$@")
        break
        ;;
    *)
        echo "usage: $0 [--pyat PATH] [-- PYTEST ARGS...]" >&2
        exit 2
        ;;
    esac
done
if [[ -z "$pyat" ]]; then
    pyat="$(cd "$root" && swift build --show-bin-path)/pyat"
fi
[[ -x "$pyat" ]] || { echo "pyairtable-interop: no pyat binary at $pyat (run swift build)" >&2; exit 1; }

venv="$root/.build/pyairtable-venv"
stamp="$venv/.pins"
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "${pins[*]}" ]]; then
    echo "pyairtable-interop: installing ${pins[*]} into ${venv#"$root"/}"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
    echo "${pins[*]}" >"$stamp"
fi

cd "$root/scripts/pyairtable"
PYAT_BIN="$pyat" timeout --kill-after=30 900 "$venv/bin/python" -m pytest -p no:cacheprovider --timeout 300 \
    -q -ra ${extra[@]+"${extra[@]}"}
