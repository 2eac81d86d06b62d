#!/usr/bin/env python3
"""Measures the reference server against nginx on this machine, in one run.

Starts `pyat serve` (release build) on a throwaway data directory, seeds a 10k-record table, and
drives it with wrk from a second process:

- GET a record, cycling over the 10k distinct records (scripts/wrk_paths.lua);
- GET one hot record, the same record every time (served from the in-process record cache);
- GET a record over the same 10k distinct records with the record cache off (`--record-cache-size 0`);
- PATCH a record, cycling over 1,000 records (durable: fsync per group commit).

nginx is the ceiling: it serves the very bytes pyat answered for each record, as 10k static files
(cycled the same way) and as one hot file, with status 200. Then a filtered, sorted page over a
100k-record table is timed.

Every run fails loudly: before each wrk run a sample of its requests is sent once and must answer
200 (and, for nginx, the same bytes as pyat); after it, any non-2xx answer or socket error (connect,
read, write, timeout), for pyat and nginx alike, stops the benchmark with a non-zero exit.

    python3 scripts/bench_server.py [--duration 10] [--connections 32] [--json]

Needs wrk and nginx (apt-get install wrk nginx-light); installs them when missing and root.
"""
import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATHS_SCRIPT = os.path.join(ROOT, "scripts", "wrk_paths.lua")
NGINX_PORT = 18091


class BenchFailure(Exception):
    """A subject or baseline answered something other than success: the figures would be wrong."""


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


class HTTP:
    """One keep-alive connection, so thousands of sequential checks do not each pay a handshake."""

    def __init__(self, url, headers=None):
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname, parsed.port
        self.headers = headers or {}
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=120)

    def request(self, method, path, body=None):
        """Answers (status, body bytes); reconnects once when the server closed the idle connection."""
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            try:
                self.connection.request(method, path, body=data, headers=headers)
                response = self.connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.connection.close()
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        self.connection.close()


class Server:
    def __init__(self, binary, data_dir, port, extra=()):
        self.process = subprocess.Popen(
            [binary, "serve", "--demo", "--port", str(port), "--data-dir", data_dir, "--log-level", "error", *extra],
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
            raise BenchFailure("pyat serve did not start (is port %d taken?)" % port)
        self.http = HTTP(self.url, {"Authorization": "Bearer " + self.token, "Accept": "application/json"})

    def raw(self, method, path, body=None):
        """Answers the body bytes of a success (200 for a GET, 2xx for a write such as a 201 create);
        anything else fails the benchmark."""
        status, data = self.http.request(method, "/api/v1/" + path, body)
        if status != 200 and not (method != "GET" and 200 <= status < 300):
            raise BenchFailure(f"pyat answered {status} to {method} /api/v1/{path}: {data[:300]!r}")
        return data

    def call(self, method, path, body=None):
        return json.loads(self.raw(method, path, body) or b"null")

    def stop(self):
        if getattr(self, "http", None):
            self.http.close()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


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
    if len(ids) != count or len(set(ids)) != count:
        raise BenchFailure(f"seeding {name}: {len(set(ids))} distinct records created, not {count}")
    return table["id"], ids


def parse_wrk(name, output):
    """The figures of one wrk run; fails the benchmark on any error it reports."""
    def seconds(text):
        value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
        return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]

    def required(pattern):
        match = re.search(pattern, output)
        if match is None:
            raise BenchFailure(f"{name}: cannot read wrk's output (no {pattern!r}):\n{output}")
        return match

    # wrk counts answers with a status of 400 or more here; the checks before each run make sure
    # the paths answer 200 rather than a redirect.
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    non_2xx = int(non_2xx.group(1)) if non_2xx else 0
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    socket_errors = dict(zip(("connect", "read", "write", "timeout"), map(int, socket.groups()))) if socket else {
        "connect": 0, "read": 0, "write": 0, "timeout": 0}
    requests = int(required(r"(\d+) requests in").group(1))
    if non_2xx or any(socket_errors.values()) or requests == 0:
        raise BenchFailure(
            f"{name}: {non_2xx} non-2xx answers, socket errors {socket_errors}, {requests} requests: "
            f"these figures would measure errors, not the subject\n{output}"
        )
    return {
        "rps": float(required(r"Requests/sec:\s+([\d.]+)").group(1)),
        "p50_ms": seconds(required(r"\s50%\s+(\S+)").group(1)) * 1000,
        "p99_ms": seconds(required(r"\s99%\s+(\S+)").group(1)) * 1000,
        "requests": requests, "non_2xx": non_2xx, "socket_errors": socket_errors,
    }


def wrk(name, url, args, headers=(), script_args=None):
    command = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    if script_args is not None:
        command += ["-s", PATHS_SCRIPT]
    command.append(url)
    if script_args is not None:
        command += ["--", *script_args]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        raise BenchFailure(f"{name}: wrk exited with {run.returncode}: {run.stderr or run.stdout}")
    return parse_wrk(name, run.stdout)


def write_paths(directory, name, paths):
    path = os.path.join(directory, name)
    with open(path, "w") as handle:
        handle.write("\n".join(paths) + "\n")
    return path


def check_sample(name, client, paths, expected=None, sample=200):
    """Sends a sample of `paths` (first, last and random ones) once: each must answer 200, with the
    bytes in `expected` (path -> bytes) when given."""
    chosen = {paths[0], paths[-1], *random.Random(7).sample(paths, min(sample, len(paths)))}
    for path in sorted(chosen):
        status, body = client.request("GET", path)
        if status != 200:
            raise BenchFailure(f"{name}: GET {path} answered {status}, not 200: {body[:300]!r}")
        if expected is not None and body != expected[path]:
            raise BenchFailure(f"{name}: GET {path} answered other bytes than pyat ({len(body)} bytes "
                               f"against {len(expected[path])})")


class Nginx:
    """nginx serving files from a docroot its workers can read (0755 directories, 0644 files)."""

    def __init__(self, files):
        # A directory of its own: the benchmark's temporary directory is 0700, which nginx's
        # unprivileged workers cannot enter (they answered 403 to everything before).
        self.directory = tempfile.mkdtemp(prefix="pyat-bench-nginx-")
        os.chmod(self.directory, 0o755)
        root = os.path.join(self.directory, "www")
        for relative, body in files.items():
            target = os.path.join(root, relative.lstrip("/"))
            os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(body)
            os.chmod(target, 0o644)
        for current, directories, _ in os.walk(root):
            os.chmod(current, 0o755)
        config = os.path.join(self.directory, "nginx.conf")
        temp = os.path.join(self.directory, "temp")
        os.makedirs(temp, mode=0o755)
        with open(config, "w") as handle:
            handle.write(f"""
worker_processes auto;
pid {self.directory}/nginx.pid;
error_log {self.directory}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    server {{
        listen 127.0.0.1:{NGINX_PORT};
        root {root};
        default_type application/json;
    }}
}}
""")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.process = subprocess.Popen(
            [nginx, "-p", self.directory, "-e", os.path.join(self.directory, "nginx-error.log"),
             "-c", config, "-g", "daemon off;"],
        )
        self.url = f"http://127.0.0.1:{NGINX_PORT}"
        deadline = time.time() + 20
        while True:
            if self.process.poll() is not None:
                self.stop()
                raise BenchFailure(f"nginx exited with {self.process.returncode}: {self.error_log()}")
            try:
                probe = HTTP(self.url)
                probe.request("GET", "/")
                probe.close()
                break
            except OSError:
                if time.time() > deadline:
                    self.stop()
                    raise BenchFailure(f"nginx did not listen on {NGINX_PORT}: {self.error_log()}")
                time.sleep(0.05)

    def error_log(self):
        try:
            with open(os.path.join(self.directory, "nginx-error.log")) as handle:
                return handle.read()[-2000:]
        except OSError:
            return "(no error log)"

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--records", type=int, default=10_000, help="distinct records the GET figures cycle over")
    parser.add_argument("--large", type=int, default=100_000, help="records in the filter benchmark table")
    parser.add_argument("--binary", help="a release pyat to run instead of building one")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.duration < 1 or args.connections < 1 or args.records < 1 or args.large < 1:
        parser.error("--duration, --connections, --records and --large must be positive")
    ensure_tools()
    binary = args.binary or build()
    directory = tempfile.mkdtemp(prefix="pyat-bench-")
    data_dir = os.path.join(directory, "data")
    results = {}
    server = nginx = None
    try:
        server = Server(binary, data_dir, 18090)
        workspace = server.call("GET", "workspaces")["data"][0]["id"]
        base = server.call("POST", f"workspaces/{workspace}/bases", {"name": "Bench"})["id"]
        table, ids = seed_table(server, base, "Distinct", args.records)
        auth = f"Authorization: Bearer {server.token}"

        # pyat's exact answer for every record: nginx serves these bytes, and the checks compare.
        record_paths = [f"/api/v1/records/{record_id}" for record_id in ids]
        answers = {path: server.raw("GET", path[len("/api/v1/"):]) for path in record_paths}
        hot_path = record_paths[len(record_paths) // 2]
        record_paths_file = write_paths(directory, "records.txt", record_paths)

        check_sample("pyat GET distinct", server.http, record_paths, answers)
        results["get_record_distinct"] = wrk("pyat GET distinct", server.url, args, [auth], [record_paths_file])
        results["get_record_distinct"]["distinct_records"] = len(record_paths)
        check_sample("pyat GET hot", server.http, [hot_path], answers)
        results["get_record_hot"] = wrk("pyat GET hot", server.url + hot_path, args, [auth])

        patch_paths_file = write_paths(directory, "patch.txt", record_paths[:1000])
        results["patch_record"] = wrk("pyat PATCH", server.url, args, [auth], [patch_paths_file, "patch-score"])
        results["patch_record"]["distinct_records"] = min(1000, len(record_paths))

        # nginx: the bytes pyat answered (before the PATCH run changed some), 200, same paths.
        nginx = Nginx({path: answers[path] for path in record_paths})
        client = HTTP(nginx.url)
        try:
            check_sample("nginx distinct", client, record_paths, answers)
            check_sample("nginx hot", client, [hot_path], answers)
        finally:
            client.close()
        results["nginx_static_distinct"] = wrk("nginx distinct", nginx.url, args, script_args=[record_paths_file])
        results["nginx_static_distinct"]["distinct_records"] = len(record_paths)
        results["nginx_static_hot"] = wrk("nginx hot", nginx.url + hot_path, args)
        nginx.stop()
        nginx = None
        results["get_distinct_vs_nginx"] = results["get_record_distinct"]["rps"] / results["nginx_static_distinct"]["rps"]
        results["get_hot_vs_nginx"] = results["get_record_hot"]["rps"] / results["nginx_static_hot"]["rps"]
        results["patch_vs_nginx"] = results["patch_record"]["rps"] / results["nginx_static_distinct"]["rps"]

        big, _ = seed_table(server, base, "Large", args.large)
        formula = "AND({Status} = 'Done', {Score} > 500)"
        query = "filter=" + urllib.parse.quote(formula) + "&sort=Score:desc&page_size=100"

        def page(extra=""):
            start = time.perf_counter()
            answer = server.call("GET", f"tables/{big}/records?{query}{extra}")
            elapsed = (time.perf_counter() - start) * 1000
            records = answer["data"]
            scores = [record["fields"].get("Score") for record in records]
            # A page of the wrong records would time something else: check it is the filtered, sorted one.
            if not records or any(record["fields"].get("Status") != "Done" or record["fields"].get("Score", 0) <= 500
                                  for record in records) or scores != sorted(scores, reverse=True):
                raise BenchFailure(f"the filtered page is not {formula} sorted by Score: {records[:3]}")
            return answer, elapsed

        timings = []
        for _ in range(20):
            first, elapsed = page()
            timings.append(elapsed)
        cursor = first["next_cursor"]
        if not cursor:
            raise BenchFailure(f"the filtered page over {args.large} records has no next page")
        deep = [page(f"&cursor={urllib.parse.quote(cursor)}")[1] for _ in range(10)]
        results["filtered_sorted_page"] = {
            "records": args.large, "p50_ms": statistics.median(timings), "max_ms": max(timings),
            "next_page_p50_ms": statistics.median(deep),
        }

        # The distinct GET again with the record cache off: what reading the stored record costs.
        server.stop()
        server = Server(binary, data_dir, 18090, ["--record-cache-size", "0"])
        check_sample("pyat GET distinct, record cache off", server.http, record_paths)
        results["get_record_distinct_no_record_cache"] = wrk(
            "pyat GET distinct, record cache off", server.url, args,
            [f"Authorization: Bearer {server.token}"], [record_paths_file],
        )
        results["get_record_distinct_no_record_cache"]["distinct_records"] = len(record_paths)
    except BenchFailure as failure:
        sys.exit(f"bench: FAILED: {failure}")
    finally:
        if nginx is not None:
            nginx.stop()
        if server is not None:
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)

    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'scenario':<40}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name in ("get_record_distinct", "get_record_hot", "get_record_distinct_no_record_cache", "patch_record",
                 "nginx_static_distinct", "nginx_static_hot"):
        r = results[name]
        print(f"{name:<40}{r['rps']:>10.0f}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}")
    print(f"GET distinct / nginx distinct: {results['get_distinct_vs_nginx']:.2f}   "
          f"GET hot / nginx hot: {results['get_hot_vs_nginx']:.2f}   "
          f"PATCH / nginx distinct: {results['patch_vs_nginx']:.2f}")
    f = results["filtered_sorted_page"]
    print(f"filtered+sorted page over {f['records']} records: p50 {f['p50_ms']:.1f} ms, max {f['max_ms']:.1f} ms, "
          f"next page p50 {f['next_page_p50_ms']:.1f} ms")


if __name__ == "__main__":
    main()
