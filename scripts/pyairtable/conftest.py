"""Fixtures of the pyairtable interop suite: real `pyat serve` processes, a user with a personal access
token, and a fresh base for each test, made through pyat's own /api/v1 (pyairtable cannot create
bases). Every server is stopped and its data directory removed on every exit path."""

import atexit
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
import requests

def _interrupt(signum, frame):
    # `timeout` sends SIGTERM: end the session like Ctrl-C, so every fixture's teardown stops its server.
    raise KeyboardInterrupt(f"signal {signum}")


signal.signal(signal.SIGTERM, _interrupt)
_servers = []


@atexit.register
def _stop_leftovers():
    for server in _servers:
        server.stop()


#: How long a server may take to start listening.
START_TIMEOUT = 60
#: How long one HTTP request of the set-up may take.
HTTP_TIMEOUT = 30


class Server:
    """A `pyat serve` on an ephemeral port, in a data directory of its own."""

    def __init__(self, *arguments):
        self.binary = os.environ.get("PYAT_BIN") or shutil.which("pyat")
        if not self.binary:
            raise RuntimeError("set PYAT_BIN to the pyat binary")
        self.directory = tempfile.mkdtemp(prefix="pyat-interop-")
        self.log = []
        self.process = subprocess.Popen(
            [self.binary, "serve", "--port", "0", "--data-dir", os.path.join(self.directory, "data"),
             "--log-level", "warning", *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        _servers.append(self)
        listening = threading.Event()
        self.url = None
        self.airtable_line = None

        def read():
            for line in self.process.stdout:
                self.log.append(line.rstrip("\n"))
                match = re.search(r"listening on (http://\S+)", line)
                if match:
                    self.url = match.group(1)
                if line.startswith("Airtable API: "):
                    self.airtable_line = line.strip()
                    listening.set()

        threading.Thread(target=read, daemon=True).start()
        if not listening.wait(START_TIMEOUT) or self.url is None:
            self.stop()
            raise RuntimeError("pyat serve did not start:\n" + "\n".join(self.log[-50:]))
        self.endpoint = self.url

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=20)
        shutil.rmtree(self.directory, ignore_errors=True)

    def crashed(self):
        return self.process.poll() is not None


class Account:
    """A registered user of a server, with a personal access token and /api/v1 helpers."""

    def __init__(self, server):
        self.server = server
        self.http = requests.Session()
        email = f"interop-{uuid.uuid4().hex[:12]}@example.com"
        answer = self.http.post(
            f"{server.url}/api/v1/auth/register",
            json={"email": email, "password": "correct horse battery", "name": "Interop"},
            timeout=HTTP_TIMEOUT,
        )
        answer.raise_for_status()
        self.user_id = answer.json()["user"]["id"]
        self.email = email
        access = answer.json()["tokens"]["access_token"]
        self.http.headers["Authorization"] = f"Bearer {access}"
        token = self.v1("post", "auth/tokens", json={"name": "pyairtable"})
        self.token = token["token"]
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        self.workspace = self.v1("post", "workspaces", json={"name": "Interop"})["id"]

    def v1(self, method, path, **arguments):
        answer = self.http.request(method, f"{self.server.url}/api/v1/{path}", timeout=HTTP_TIMEOUT, **arguments)
        assert answer.status_code < 300, f"{method.upper()} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    def base(self, name="Interop"):
        return self.v1("post", f"workspaces/{self.workspace}/bases", json={"name": name})["id"]

    def table(self, base, name, fields):
        return self.v1("post", f"bases/{base}/tables", json={"name": name, "fields": fields})


@pytest.fixture(scope="session")
def server():
    # Attachments by URL come from a file server on this machine (test_attachments_by_url).
    # Webhook notifications go to a receiver on this machine (test_webhooks).
    server = Server("--downloads-allow-private", "--webhooks-allow-private")
    try:
        yield server
    finally:
        server.stop()
    assert not server.log or not any("fatal" in line.lower() for line in server.log), "\n".join(server.log[-50:])


@pytest.fixture(scope="session")
def limited_server():
    server = Server("--airtable-limits")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def account(server):
    return Account(server)


TASK_FIELDS = [
    {"name": "Name", "type": "singleLineText"},
    {"name": "Notes", "type": "multilineText"},
    {"name": "Score", "type": "number", "options": {"precision": 1}},
    {"name": "Done", "type": "checkbox"},
    {"name": "Status", "type": "singleSelect", "options": {"choices": [{"name": "Todo"}, {"name": "Doing"}, {"name": "Done"}]}},
    {"name": "Tags", "type": "multipleSelects", "options": {"choices": [{"name": "red"}, {"name": "blue"}]}},
    {"name": "Due", "type": "date"},
    {"name": "When", "type": "dateTime"},
    {"name": "Email", "type": "email"},
    {"name": "Files", "type": "multipleAttachments"},
]


@pytest.fixture
def tasks(account):
    """A fresh base with a Tasks table of every plain type; answers (base id, table JSON)."""
    base = account.base()
    table = account.table(base, "Tasks", TASK_FIELDS)
    return base, table


@pytest.fixture(autouse=True)
def server_alive(request):
    yield
    if "server" in request.fixturenames:
        server = request.getfixturevalue("server")
        assert not server.crashed(), "pyat serve exited:\n" + "\n".join(server.log[-50:])
