#!/usr/bin/env python3
"""Measures the reference server against nginx on this machine, in one run.

Starts `pyat serve` (release build) on a throwaway data directory, seeds a 10k-record table, and
drives it with wrk from a second process: GET one record, PATCH one record (durable: fsync per
group commit). nginx serving the same JSON as a static file is the ceiling. Then times a filtered,
sorted page over a 100k-record table.

    python3 scripts/bench_server.py [--duration 10] [--connections 32] [--json]

Needs wrk and nginx (apt-get install wrk nginx-light); installs them when missing and root.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ensure_tools():
    missing = [tool for tool in ("wrk", "nginx") if shutil.which(tool) is None and not os.path.exists("/usr/sbin/" + tool)]
    if missing:
        if os.geteuid() != 0:
            sys.exit(f"bench: please install {' '.join(missing)}")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk", "nginx-light"], check=True, stdout=subprocess.DEVNULL)


def build():
    subprocess.run(
        ["swift", "build", "-c", "release", "--product", "pyat", "--scratch-path", ".build-release"],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )
    return os.path.join(ROOT, ".build-release", "release", "pyat")


class Server:
    def __init__(self, binary, data_dir, port):
        self.process = subprocess.Popen(
            [binary, "serve", "--demo", "--port", str(port), "--data-dir", data_dir, "--log-level", "error"],
            stdout=subprocess.PIPE, text=True,
        )
        self.url = self.token = None
        deadline = time.time() + 60
        while time.time() < deadline and self.token is None:
            line = self.process.stdout.readline()
            if not line:
                break
            if line.startswith("export PYAT_SERVER="):
                self.url = line.split("=", 1)[1].strip()
            if line.startswith("export PYAT_TOKEN="):
                self.token = line.split("=", 1)[1].strip()
        if self.token is None:
            self.stop()
            sys.exit("bench: the server did not start")

    def call(self, method, path, body=None):
        request = urllib.request.Request(
            self.url + "/api/v1/" + path, method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": "Bearer " + self.token, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read() or b"null")

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def seed_table(server, base_id, name, count):
    table = server.call("POST", f"bases/{base_id}/tables", {
        "name": name,
        "fields": [
            {"name": "Name", "type": "singleLineText"},
            {"name": "Status", "type": "singleSelect",
             "options": {"choices": [{"name": "Todo"}, {"name": "Doing"}, {"name": "Done"}]}},
            {"name": "Score", "type": "number"},
        ],
    })
    statuses = ["Todo", "Doing", "Done"]
    ids = []
    for start in range(0, count, 100):
        operations = [
            {"op": "create", "fields": {"Name": f"Record {i}", "Status": statuses[i % 3], "Score": (i * 7919) % 1000}}
            for i in range(start, min(start + 100, count))
        ]
        results = server.call("POST", f"tables/{table['id']}/records/batch", {"operations": operations})["results"]
        ids.extend(result["id"] for result in results)
    return table["id"], ids


def parse_wrk(output):
    def seconds(text):
        value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
        return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = seconds(re.search(r"\s50%\s+(\S+)", output).group(1))
    p99 = seconds(re.search(r"\s99%\s+(\S+)", output).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    return {"rps": rps, "p50_ms": p50 * 1000, "p99_ms": p99 * 1000,
            "non_2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(1) if errors else ""}


def wrk(url, args, headers=(), script=None):
    command = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    if script:
        command += ["-s", script]
    command.append(url)
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return parse_wrk(output)


def run_nginx(directory, body):
    root = os.path.join(directory, "www")
    os.makedirs(root)
    with open(os.path.join(root, "record.json"), "w") as handle:
        handle.write(body)
    config = os.path.join(directory, "nginx.conf")
    with open(config, "w") as handle:
        handle.write(f"""
worker_processes auto;
pid {directory}/nginx.pid;
error_log {directory}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:18091;
        root {root};
        default_type application/json;
    }}
}}
""")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    process = subprocess.Popen([nginx, "-c", config, "-g", "daemon off;"])
    time.sleep(0.5)
    return process


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--large", type=int, default=100_000, help="records in the filter benchmark table")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    ensure_tools()
    binary = build()
    directory = tempfile.mkdtemp(prefix="pyat-bench-")
    results = {}
    server = Server(binary, os.path.join(directory, "data"), 18090)
    try:
        workspace = server.call("GET", "workspaces")["data"][0]["id"]
        base = server.call("POST", f"workspaces/{workspace}/bases", {"name": "Bench"})["id"]
        table, ids = seed_table(server, base, "TenK", 10_000)
        record_id = ids[len(ids) // 2]
        auth = f"Authorization: Bearer {server.token}"
        record_body = json.dumps(server.call("GET", f"records/{record_id}"))

        results["get_record"] = wrk(f"{server.url}/api/v1/records/{record_id}", args, [auth])

        script = os.path.join(directory, "patch.lua")
        with open(script, "w") as handle:
            handle.write("local ids = {" + ",".join(f'"{i}"' for i in ids[:1000]) + "}\n")
            handle.write("local n = 0\n")
            handle.write('wrk.method = "PATCH"\nwrk.headers["Content-Type"] = "application/json"\n')
            handle.write("request = function()\n  n = n + 1\n  local id = ids[(n % #ids) + 1]\n")
            handle.write('  return wrk.format(nil, "/api/v1/records/" .. id, nil, \'{"fields":{"Score":\' .. (n % 1000) .. \'}}\')\nend\n')
        results["patch_record"] = wrk(f"{server.url}/", args, [auth], script)

        nginx = run_nginx(directory, record_body)
        try:
            results["nginx_static"] = wrk("http://127.0.0.1:18091/record.json", args)
        finally:
            nginx.terminate()
            nginx.wait()
        results["get_vs_nginx"] = results["get_record"]["rps"] / results["nginx_static"]["rps"]
        results["patch_vs_nginx"] = results["patch_record"]["rps"] / results["nginx_static"]["rps"]

        big, _ = seed_table(server, base, "Large", args.large)
        query = "filter=" + urllib.parse.quote("AND({Status} = 'Done', {Score} > 500)") + "&sort=Score:desc&page_size=100"
        timings = []
        for _ in range(20):
            start = time.perf_counter()
            page = server.call("GET", f"tables/{big}/records?{query}")
            timings.append((time.perf_counter() - start) * 1000)
        cursor = page["next_cursor"]
        deep = []
        for _ in range(10):
            start = time.perf_counter()
            server.call("GET", f"tables/{big}/records?{query}&cursor={urllib.parse.quote(cursor)}")
            deep.append((time.perf_counter() - start) * 1000)
        results["filtered_sorted_page"] = {
            "records": args.large, "p50_ms": statistics.median(timings), "max_ms": max(timings),
            "next_page_p50_ms": statistics.median(deep),
        }
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)

    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'scenario':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name in ("get_record", "patch_record", "nginx_static"):
        r = results[name]
        print(f"{name:<28}{r['rps']:>10.0f}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}")
    print(f"GET / nginx: {results['get_vs_nginx']:.2f}   PATCH / nginx: {results['patch_vs_nginx']:.2f}")
    f = results["filtered_sorted_page"]
    print(f"filtered+sorted page over {f['records']} records: p50 {f['p50_ms']:.1f} ms, max {f['max_ms']:.1f} ms, "
          f"next page p50 {f['next_page_p50_ms']:.1f} ms")


if __name__ == "__main__":
    import urllib.parse
    main()
