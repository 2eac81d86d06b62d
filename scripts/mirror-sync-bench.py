#!/usr/bin/env python3
"""A full sync of mirror mode against an upstream that enforces Airtable's rate limit.

Starts an upstream `pyat serve --demo --airtable-limits`, fills a base with N records (4 fields) through
/api/v1, starts a mirror `pyat serve --demo --mirror … --mirror-base …` (default pace: 5 requests a
second per base, Airtable's), waits for its first sync and prints one JSON line: the sync's outcome,
requests, 429s, and its time against the arithmetic floor — (requests − 1) / 5 s, the least time
those requests take at 5 a second. Fails (exit 1) when the sync failed, met a 429, or a request of
this script failed. Both servers and their data directories are removed on every path.

    swift build -c release --product pyat --scratch-path .build-release
    PYAT_BIN=.build-release/release/pyat scripts/mirror-sync-bench.py 100000
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

RECORDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
BINARY = os.environ.get("PYAT_BIN", ".build/debug/pyat")
RATE = 5


def start(arguments, directory, environment=None):
    log = open(os.path.join(directory, "serve.log"), "w")
    process = subprocess.Popen(
        [BINARY, "serve", "--demo", "--port", "0", "--log-level", "warning", "--data-dir",
         os.path.join(directory, "data")] + arguments,
        stdout=subprocess.PIPE, stderr=log, env=environment, text=True)
    printed = ""
    deadline = time.time() + 120
    while "PYAT_TOKEN=" not in printed:
        line = process.stdout.readline()
        if not line or time.time() > deadline:
            process.kill()
            raise SystemExit(f"pyat serve did not start; see {directory}/serve.log")
        printed += line
    server = re.search(r"PYAT_SERVER=(\S+)", printed).group(1)
    token = re.search(r"PYAT_TOKEN=(\S+)", printed).group(1)
    return process, server, token


def call(method, url, token, body=None):
    request = urllib.request.Request(
        url, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        if not 200 <= response.status < 300:
            raise SystemExit(f"{method} {url}: {response.status}")
        return json.loads(response.read() or b"null")


def main():
    root = tempfile.mkdtemp(prefix="pyat-mirror-bench-")
    processes = []
    try:
        os.makedirs(os.path.join(root, "upstream"))
        os.makedirs(os.path.join(root, "mirror"))
        upstream, upstream_url, upstream_token = start(["--airtable-limits"], os.path.join(root, "upstream"))
        processes.append(upstream)
        api = upstream_url + "/api/v1"
        workspace = call("POST", api + "/workspaces", upstream_token, {"name": "Bench"})
        base = call("POST", f"{api}/workspaces/{workspace['id']}/bases", upstream_token, {"name": "Big"})
        table = call("POST", f"{api}/bases/{base['id']}/tables", upstream_token, {"name": "Items", "fields": [
            {"name": "Name", "type": "singleLineText"}, {"name": "Score", "type": "number"},
            {"name": "Done", "type": "checkbox"}, {"name": "Notes", "type": "multilineText"}]})
        for first in range(0, RECORDS, 100):
            operations = [{"op": "create", "fields": {
                "Name": f"Item {n}", "Score": n, "Done": n % 2 == 0, "Notes": "some notes " * 5}}
                for n in range(first, min(RECORDS, first + 100))]
            call("POST", f"{api}/tables/{table['id']}/records/batch", upstream_token, {"operations": operations})
        time.sleep(1.5)  # the upstream's allowance refills
        environment = dict(os.environ, PYAT_MIRROR_TOKEN=upstream_token)
        started = time.time()
        mirror, mirror_url, mirror_token = start(
            ["--mirror", upstream_url, "--mirror-base", base["id"]], os.path.join(root, "mirror"), environment)
        processes.append(mirror)
        while True:
            status = call("GET", mirror_url + "/api/v1/mirror", mirror_token)["bases"][0]
            report = status.get("last_sync") or {}
            if status["state"] in ("ok", "failed") and report.get("finished_at"):
                break
            if time.time() - started > 3600:
                raise SystemExit("the sync did not end within an hour")
            time.sleep(0.2)
        seconds = time.time() - started
        floor = (report["requests"] - 1) / RATE
        result = {
            "records": RECORDS, "outcome": report["outcome"], "error": report.get("error"),
            "requests": report["requests"], "rate_limited": report["rate_limited"],
            "created": report["created"], "seconds": round(seconds, 1),
            "arithmetic_floor_seconds": round(floor, 1), "ratio_to_floor": round(seconds / floor, 3),
        }
        print(json.dumps(result))
        if report["outcome"] != "ok" or report["rate_limited"] != 0 or report["created"] != RECORDS:
            sys.exit(1)
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
