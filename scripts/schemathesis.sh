#!/usr/bin/env bash
# Fuzzes a throwaway `pyat serve --demo` against the openapi.yaml it serves, with Schemathesis: every
# check, every phase (examples, coverage, fuzzing, stateful), signed in as the demo user. Exits non-zero
# on any failure. CI runs it after `swift build`; run it locally the same way.
#
# Usage: scripts/schemathesis.sh [--max-time SECONDS] [--pyat PATH] [-- EXTRA SCHEMATHESIS ARGS...]
#   --max-time   the time budget of the run (default 180 s; fuzzing and stateful repeat until spent)
#   --pyat       the pyat binary (default: the debug build, $(swift build --show-bin-path)/pyat)
#   after --      passed to `schemathesis run`, e.g. -- --seed 42 --report junit
#   PYAT_SCHEMATHESIS_LOG_LEVEL  the server's --log-level (default warning); its last 50 lines are printed when the run fails
#
# Schemathesis 4.32.5 is installed from PyPI into a virtual environment under .build/ (reused while the
# pin matches). The server and Schemathesis run in a network namespace of their own that has only a
# loopback interface: the run registers webhooks at whatever URLs it draws, and the server must not
# deliver to any of them outside this machine. The server is stopped and its data directory removed on
# every exit path.
set -euo pipefail

readonly schemathesis_version="4.32.5"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
max_time=180
pyat=""
extra=()

while [[ $# -gt 0 ]]; do
    case "$1" in
    --max-time)
        max_time="${2:?--max-time needs a number of seconds}"
        shift 2
        ;;
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
        echo "usage: $0 [--max-time SECONDS] [--pyat PATH] [-- SCHEMATHESIS ARGS...]" >&2
        exit 2
        ;;
    esac
done
[[ "$max_time" =~ ^[1-9][0-9]*$ ]] || { echo "error: --max-time must be a whole number of seconds" >&2; exit 2; }
# The run signs in once, with an access token that lives 15 minutes.
((max_time <= 780)) || { echo "error: --max-time is at most 780 seconds (the access token lives 15 minutes)" >&2; exit 2; }

# Inside the namespace (see the end of this file): start the server, fuzz it, stop it.
if [[ "${PYAT_SCHEMATHESIS_INSIDE:-}" == "1" ]]; then
    ip link set lo up
    workdir="$(mktemp -d)"
    server_pid=""
    cleanup() {
        if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
            kill -TERM "$server_pid" 2>/dev/null || true
            for _ in $(seq 1 100); do
                kill -0 "$server_pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -KILL "$server_pid" 2>/dev/null || true
            wait "$server_pid" 2>/dev/null || true
        fi
        rm -rf "$workdir"
    }
    trap cleanup EXIT
    trap 'exit 130' INT TERM

    # Every request of the run comes from 127.0.0.1, and it fuzzes the sign-in routes; the
    # default allowances (30 sign-ins a minute per address, 10 failures per account in 5 minutes,
    # 16 password checks queued) would let its own fuzzing of /auth/login and /auth/register lock
    # it out on a loaded machine, leaving the operations behind it answered 401 (a failed run).
    # The throttle and the queue are tested by `swift test` (AuthThrottleTests).
    "$pyat" serve --demo --port 0 --data-dir "$workdir/data" --log-level "${PYAT_SCHEMATHESIS_LOG_LEVEL:-warning}" \
        --auth-attempts-per-address 1000000 --auth-attempts-per-account 1000000 --password-hash-queue 10000 \
        >"$workdir/serve.out" 2>"$workdir/serve.err" &
    server_pid=$!

    url=""
    for _ in $(seq 1 600); do
        url="$(sed -n 's/^export PYAT_SERVER=//p' "$workdir/serve.out")"
        [[ -n "$url" ]] && break
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "schemathesis: pyat serve exited before listening:" >&2
            cat "$workdir/serve.err" >&2
            exit 1
        fi
        sleep 0.1
    done
    if [[ -z "$url" ]]; then
        echo "schemathesis: pyat serve printed no URL within 60 s" >&2
        cat "$workdir/serve.err" >&2
        exit 1
    fi
    # An access token (a JWT, valid 15 minutes) from signing in as the demo user, not the personal
    # access token it prints: the run revokes the personal access tokens it finds. Never echoed.
    credentials="$(sed -n 's/^demo user: //p' "$workdir/serve.out")"
    PYAT_ACCESS_TOKEN="$(
        DEMO_EMAIL="${credentials%% / *}" DEMO_PASSWORD="${credentials#* / }" python3 -c '
import json, os, sys, urllib.request
body = json.dumps({"email": os.environ["DEMO_EMAIL"], "password": os.environ["DEMO_PASSWORD"]}).encode()
request = urllib.request.Request(sys.argv[1] + "/api/v1/auth/login", data=body,
                                 headers={"Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=60) as answer:
    print(json.load(answer)["tokens"]["access_token"])
' "$url"
    )" || PYAT_ACCESS_TOKEN=""
    if [[ -z "$PYAT_ACCESS_TOKEN" ]]; then
        echo "schemathesis: could not sign in as the demo user; the server logged:" >&2
        tail -50 "$workdir/serve.err" >&2
        exit 1
    fi
    export PYAT_ACCESS_TOKEN
    echo "schemathesis: pyat serve --demo at $url, budget ${max_time}s"

    status=0
    # From the throwaway directory, so Schemathesis's caches (.schemathesis/, .hypothesis/) go with it.
    cd "$workdir"
    PYTHONPATH="$root/scripts" SCHEMATHESIS_HOOKS=schemathesis_hooks \
        "$SCHEMATHESIS_BIN" --config-file "$root/scripts/schemathesis.toml" run "$url/openapi.yaml" \
        --checks all --phases examples,coverage,fuzzing,stateful --max-time "$max_time" \
        --request-timeout 20 --no-color ${extra[@]+"${extra[@]}"} || status=$?
    # The run's credentials must still work at its end, or everything behind them went untested.
    if kill -0 "$server_pid" 2>/dev/null && ! python3 -c '
import os, sys, urllib.request
request = urllib.request.Request(sys.argv[1] + "/api/v1/users/me",
                                 headers={"Authorization": "Bearer " + os.environ["PYAT_ACCESS_TOKEN"]})
with urllib.request.urlopen(request, timeout=60) as answer:
    sys.exit(0 if answer.status == 200 else 1)
' "$url"; then
        echo "schemathesis: the run's access token no longer signs in: the run tested nothing behind it" >&2
        status=1
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "schemathesis: pyat serve died during the run:" >&2
        tail -50 "$workdir/serve.err" >&2
        status=1
    elif [[ "$status" != "0" ]]; then
        echo "schemathesis: the last lines pyat serve logged:" >&2
        tail -50 "$workdir/serve.err" >&2
    fi
    exit "$status"
fi

if [[ -z "$pyat" ]]; then
    pyat="$(cd "$root" && swift build --show-bin-path)/pyat"
fi
[[ -x "$pyat" ]] || { echo "error: $pyat is not an executable: run swift build first" >&2; exit 1; }

venv="$root/.build/schemathesis-venv"
if [[ "$("$venv/bin/schemathesis" --version 2>/dev/null || true)" != *"version $schemathesis_version"* ]]; then
    echo "schemathesis: installing schemathesis==$schemathesis_version into ${venv#"$root"/}"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
fi

# A network namespace needs root, or an unprivileged user namespace to be root in.
namespace=(unshare --net)
[[ "$(id -u)" == "0" ]] || namespace=(unshare --map-root-user --net)
if ! "${namespace[@]}" true 2>/dev/null; then
    echo "error: cannot create a network namespace (${namespace[*]}); the run needs one so that webhooks it" >&2
    echo "       registers cannot reach other machines" >&2
    exit 1
fi
PYAT_SCHEMATHESIS_INSIDE=1 SCHEMATHESIS_BIN="$venv/bin/schemathesis" \
    exec "${namespace[@]}" -- "$root/scripts/schemathesis.sh" --max-time "$max_time" --pyat "$pyat" -- ${extra[@]+"${extra[@]}"}
