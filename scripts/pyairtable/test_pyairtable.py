"""pyairtable 3.5.0.post1, unchanged, against `pyat serve`: the calls Airtable developers already make.

Run by scripts/pyairtable-interop.sh (CI runs it); PYAT_BIN names the pyat binary."""

import concurrent.futures
import datetime
import functools
import http.server
import os
import tempfile
import threading
import time

import pytest
import requests
from pyairtable import Api
from pyairtable import formulas as F
from pyairtable.api.types import RecordDict
from pyairtable.models import WebhookNotification
from pyairtable.orm import Model
from pyairtable.orm import fields as OF
from pyairtable.utils import Url


def api_for(server, account, **options):
    return Api(account.token, endpoint_url=server.url, timeout=(10, 60), **options)


def names(records):
    return [record["fields"].get("Name") for record in records]


def test_endpoint_line(server):
    assert server.airtable_line == f"Airtable API: {server.url}/v0"


def test_crud(server, account, tasks):
    base, table = tasks
    api = api_for(server, account)
    t = api.table(base, "Tasks")
    created = t.create({"Name": "Alpha", "Score": 1.5, "Done": True, "Status": "Todo", "Tags": ["red"]})
    assert created["id"].startswith("rec") and created["createdTime"].endswith("Z")
    assert created["fields"] == {"Name": "Alpha", "Score": 1.5, "Done": True, "Status": "Todo", "Tags": ["red"]}

    fetched = t.get(created["id"])
    assert fetched == created
    # By table id too, and the same record through pyat's own API.
    assert api.table(base, table["id"]).get(created["id"])["fields"]["Name"] == "Alpha"
    assert account.v1("get", f"records/{created['id']}")["fields"]["Name"] == "Alpha"

    updated = t.update(created["id"], {"Notes": "line one\nline two"})
    assert updated["fields"]["Name"] == "Alpha" and updated["fields"]["Notes"] == "line one\nline two"
    replaced = t.update(created["id"], {"Name": "Beta"}, replace=True)
    assert replaced["fields"] == {"Name": "Beta"}

    assert t.delete(created["id"]) == {"id": created["id"], "deleted": True}
    with pytest.raises(requests.HTTPError) as error:
        t.get(created["id"])
    assert error.value.response.status_code == 404
    assert error.value.response.json()["error"]["type"] == "MODEL_ID_NOT_FOUND"


def test_batches_and_pages(server, account, tasks):
    base, _ = tasks
    api = api_for(server, account)
    t = api.table(base, "Tasks")
    sent = []

    def count_requests(response, *args, **kwargs):
        sent.append((response.request.method, response.status_code))

    api.session.hooks["response"].append(count_requests)
    created = t.batch_create([{"Name": f"R{index:02d}", "Score": index} for index in range(1, 26)])
    # pyairtable sends 10, 10, 5; each answered 200.
    assert sent == [("POST", 200)] * 3
    assert names(created) == [f"R{index:02d}" for index in range(1, 26)]

    # all() follows offsets across pages of 10.
    sent.clear()
    everything = t.all(page_size=10)
    assert len(everything) == 25 and len(sent) == 3
    assert sorted(names(everything)) == [f"R{index:02d}" for index in range(1, 26)]
    assert [len(page) for page in t.iterate(page_size=10, max_records=15)] == [10, 5]

    updated = t.batch_update([{"id": record["id"], "fields": {"Done": True}} for record in created[:12]])
    assert len(updated) == 12 and all(record["fields"]["Done"] for record in updated)
    assert len(t.all(formula="{Done}")) == 12

    deleted = t.batch_delete([record["id"] for record in created[:15]])
    assert [item["id"] for item in deleted] == [record["id"] for record in created[:15]]
    assert all(item["deleted"] for item in deleted)
    assert len(t.all()) == 10


def test_upsert(server, account, tasks):
    base, _ = tasks
    t = api_for(server, account).table(base, "Tasks")
    t.batch_create([{"Name": "keep", "Score": 1}, {"Name": "change", "Score": 2}])
    result = t.batch_upsert(
        [{"fields": {"Name": "change", "Score": 20}}, {"fields": {"Name": "new", "Score": 3}}],
        key_fields=["Name"],
    )
    assert len(result["createdRecords"]) == 1 and len(result["updatedRecords"]) == 1
    assert {record["fields"]["Name"]: record["fields"]["Score"] for record in result["records"]} == {
        "change": 20,
        "new": 3,
    }
    scores = {record["fields"]["Name"]: record["fields"].get("Score") for record in t.all()}
    assert scores == {"keep": 1, "change": 20, "new": 3}
    # replace=True clears what the upsert leaves out.
    t.batch_upsert([{"fields": {"Name": "keep"}}], key_fields=["Name"], replace=True)
    assert "Score" not in t.first(formula=F.match({"Name": "keep"}))["fields"]


def test_formulas_sort_fields_and_views(server, account, tasks):
    base, table = tasks
    t = api_for(server, account).table(base, "Tasks")
    t.batch_create(
        [
            {"Name": "a", "Score": 5, "Status": "Todo", "When": "2026-01-05T10:00:00.000Z", "Due": "2026-01-05"},
            {"Name": "b", "Score": 7, "Status": "Done", "When": "2026-02-01T09:30:00.000Z", "Due": "2026-02-01"},
            {"Name": "it's", "Score": 9, "Status": "Todo"},
            {"Name": "d", "Score": 1, "Done": True},
        ]
    )
    assert names(t.all(formula=F.match({"Name": "it's"}))) == ["it's"]
    assert names(t.all(formula=F.GTE(F.Field("Score"), 5), sort=["-Score"])) == ["it's", "b", "a"]
    assert names(t.all(formula=F.AND(F.EQ(F.Field("Status"), "Todo"), F.GT(F.Field("Score"), 6)))) == ["it's"]
    assert names(t.all(formula=F.OR(F.Field("Done"), F.EQ(F.Field("Name"), "a")), sort=["Name"])) == ["a", "d"]
    after = datetime.datetime(2026, 1, 20, tzinfo=datetime.timezone.utc)
    assert names(t.all(formula=F.GT(F.Field("When"), after))) == ["b"]
    assert names(t.all(formula=F.LT(F.Field("Due"), datetime.date(2026, 1, 10)))) == ["a"]
    assert names(t.all(formula=F.match({"Status": "Todo"}), sort=["Score"])) == ["a", "it's"]
    assert names(t.all(formula="NOT({Name} = BLANK())", sort=["-Name"])) == ["it's", "d", "b", "a"]

    only = t.all(fields=["Name"], sort=["Name"])
    assert all(set(record["fields"]) == {"Name"} for record in only)
    by_id = t.all(sort=["Name"], max_records=1, use_field_ids=True)
    name_id = next(field["id"] for field in table["fields"] if field["name"] == "Name")
    assert by_id[0]["fields"][name_id] == "a"

    account.v1("post", f"tables/{table['id']}/views", json={"name": "High", "filter": "{Score} > 6", "sort": [{"field": "Score", "direction": "desc"}]})
    assert names(t.all(view="High")) == ["it's", "b"]

    strings = t.all(cell_format="string", time_zone="UTC", user_locale="en-us", formula=F.match({"Name": "b"}))
    assert strings[0]["fields"]["Score"] == "7.0" and strings[0]["fields"]["Status"] == "Done"

    # A formula too long for a URL goes through POST listRecords.
    ids = [record["id"] for record in t.all(sort=["Name"])][:2]
    long_formula = F.OR(*[F.EQ(F.RECORD_ID(), record_id) for record_id in ids + ["rec" + "x" * 14] * 900])
    assert len(str(long_formula)) > 16000
    assert sorted(names(t.all(formula=long_formula))) == ["a", "b"]


def test_typecast(server, account, tasks):
    base, table = tasks
    t = api_for(server, account).table(base, "Tasks")
    record = t.create({"Name": "t", "Score": "42", "Status": "Blocked", "Tags": "red, green"}, typecast=True)
    assert record["fields"]["Score"] == 42 and record["fields"]["Status"] == "Blocked"
    assert sorted(record["fields"]["Tags"]) == ["green", "red"]
    status = next(field for field in t.schema().fields if field.name == "Status")
    assert "Blocked" in [choice.name for choice in status.options.choices]
    with pytest.raises(requests.HTTPError) as error:
        t.create({"Name": "u", "Status": "Nope"})
    assert error.value.response.status_code == 422
    assert error.value.response.json()["error"]["type"] == "INVALID_MULTIPLE_CHOICE_OPTIONS"
    with pytest.raises(requests.HTTPError) as error:
        t.create({"Nope": 1})
    assert error.value.response.json()["error"]["type"] == "UNKNOWN_FIELD_NAME"


def test_meta(server, account, tasks):
    base, table = tasks
    api = api_for(server, account)
    assert api.whoami()["id"] == account.user_id
    bases = {b.id: b for b in api.bases(force=True)}
    assert base in bases and bases[base].permission_level == "create"
    schema = api.base(base).schema(force=True)
    tasks_schema = schema.table("Tasks")
    assert tasks_schema.id == table["id"]
    assert tasks_schema.primary_field_id == table["fields"][0]["id"]
    types = {field.name: field.type for field in tasks_schema.fields}
    assert types["Score"] == "number" and types["When"] == "dateTime" and types["Files"] == "multipleAttachments"
    assert api.table(base, "Tasks").schema().field("Status").options.choices[0].name == "Todo"
    collaborators = api.base(base).collaborators()
    assert collaborators.id == base and collaborators.permission_level == "create"
    members = collaborators.individual_collaborators.via_workspace
    assert [(member.user_id, member.email, member.permission_level) for member in members] == [
        (account.user_id, account.email, "create")
    ]


def test_orm(server, account):
    base = account.base("ORM")
    people = account.table(base, "People", [{"name": "Name", "type": "singleLineText"}])
    account.table(
        base,
        "Tasks",
        [
            {"name": "Name", "type": "singleLineText"},
            {"name": "Done", "type": "checkbox"},
            {"name": "Due", "type": "date"},
            {"name": "When", "type": "dateTime"},
            {"name": "Owners", "type": "multipleRecordLinks", "options": {"linked_table_id": people["id"]}},
        ],
    )

    class Person(Model):
        name = OF.TextField("Name")

        class Meta:
            base_id = base
            table_name = "People"
            api_key = account.token

    class Task(Model):
        name = OF.TextField("Name")
        done = OF.CheckboxField("Done")
        due = OF.DateField("Due")
        when = OF.DatetimeField("When")
        owners = OF.LinkField("Owners", Person)

        class Meta:
            base_id = base
            table_name = "Tasks"
            api_key = account.token

    for model in (Person, Task):
        model.meta.api.endpoint_url = Url(server.url)

    ada = Person(name="Ada")
    ada.save()
    task = Task(
        name="Write",
        done=True,
        due=datetime.date(2026, 3, 1),
        when=datetime.datetime(2026, 3, 1, 9, 30, tzinfo=datetime.timezone.utc),
        owners=[ada],
    )
    task.save()
    assert task.id.startswith("rec")

    loaded = Task.from_id(task.id)
    assert loaded.name == "Write" and loaded.done is True
    assert loaded.due == datetime.date(2026, 3, 1)
    assert loaded.when == datetime.datetime(2026, 3, 1, 9, 30, tzinfo=datetime.timezone.utc)
    assert [owner.id for owner in loaded.owners] == [ada.id]
    assert loaded.owners[0].name == "Ada"

    loaded.done = False
    loaded.save()
    assert Task.from_id(task.id).done is False
    assert [t.name for t in Task.all(formula=F.EQ(Task.name, "Write"))] == ["Write"]
    assert Task.first(formula=F.EQ(Task.name, "missing")) is None
    loaded.delete()
    assert Task.all() == []


def test_concurrent_batches(server, account, tasks):
    base, _ = tasks
    api = api_for(server, account)
    t = api.table(base, "Tasks")
    statuses = []

    def record_status(response, *args, **kwargs):
        statuses.append(response.status_code)

    api.session.hooks["response"].append(record_status)

    def write(worker):
        return t.batch_create([{"Name": f"w{worker:02d}-{index:02d}", "Score": worker} for index in range(20)])

    with concurrent.futures.ThreadPoolExecutor(max_workers=25) as pool:
        results = list(pool.map(write, range(25), timeout=300))
    assert all(len(result) == 20 for result in results)
    assert all(status < 500 for status in statuses), statuses
    stored = t.all()
    assert len(stored) == 500
    assert sorted(names(stored)) == sorted(f"w{worker:02d}-{index:02d}" for worker in range(25) for index in range(20))


def test_rate_limit(limited_server):
    """With --airtable-limits, a burst past 5 requests a second is answered 429 and pyairtable's
    retries (it honours Retry-After) finish every call, each record written once."""
    from conftest import Account

    account = Account(limited_server)
    base = account.base()
    account.table(base, "Tasks", [{"name": "Name", "type": "singleLineText"}])
    t = api_for(limited_server, account).table(base, "Tasks")

    def create(index):
        return t.create({"Name": f"n{index:02d}"})

    # urllib3 retries inside the session, so the 429s do not reach response hooks: the time shows
    # them. 16 creates at 5 a second, from a full allowance of 5, take at least 2.2 s.
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        created = list(pool.map(create, range(16), timeout=300))
    assert len(created) == 16
    assert time.monotonic() - started >= 2.0
    stored = sorted(names(t.all()))
    assert stored == [f"n{index:02d}" for index in range(16)]

    # Without retries the 429 reaches the caller with Airtable's error type.
    bare = api_for(limited_server, account, retry_strategy=False).table(base, "Tasks")

    def attempt(_):
        try:
            bare.first()
            return 200
        except requests.HTTPError as error:
            assert error.response.json()["error"]["type"] == "TOO_MANY_REQUESTS"
            assert int(error.response.headers["Retry-After"]) >= 1
            return error.response.status_code

    # 20 at once: past the 5 a second however slow the machine.
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(attempt, range(20), timeout=300))
    assert 429 in answers and set(answers) <= {200, 429}, answers


def test_attachments_by_url(server, account, tasks):
    """An attachment named by URL is downloaded by the server; its URL in answers works without a token."""
    base, _ = tasks
    content = os.urandom(50_000)
    directory = tempfile.mkdtemp(prefix="pyat-interop-files-")
    with open(os.path.join(directory, "scan.bin"), "wb") as file:
        file.write(content)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
    handler.log_message = lambda *args: None
    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=files.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{files.server_address[1]}/scan.bin"
        t = api_for(server, account).table(base, "Tasks")
        record = t.create({"Name": "doc", "Files": [{"url": url, "filename": "scan.bin"}]})
        attachment = record["fields"]["Files"][0]
        assert attachment["filename"] == "scan.bin" and attachment["size"] == len(content)
        assert attachment["id"].startswith("fil")
        downloaded = requests.get(attachment["url"], timeout=30)
        assert downloaded.status_code == 200 and downloaded.content == content
        # Keeping an attachment while adding another: the kept one by id, the new one by URL.
        updated = t.update(record["id"], {"Files": [{"id": attachment["id"]}, {"url": url, "filename": "copy.bin"}]})
        assert [item["filename"] for item in updated["fields"]["Files"]] == ["scan.bin", "copy.bin"]
        tampered = attachment["url"].replace("signature=", "signature=00")
        assert requests.get(tampered, timeout=30).status_code == 403
    finally:
        files.shutdown()
        files.server_close()


def test_webhooks(server, account, tasks):
    """Airtable's webhooks: one payload per write (a batch of 10 is one), read by cursor, pings verified
    with WebhookNotification.from_request."""
    base_id, table = tasks
    api = api_for(server, account)
    pings = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            pings.append((body, self.headers.get("X-Airtable-Content-MAC")))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        base = api.base(base_id)
        created = base.add_webhook(
            f"http://127.0.0.1:{receiver.server_address[1]}/ping",
            {"options": {"filters": {"dataTypes": ["tableData"]}}},
        )
        assert created.id.startswith("ach")
        t = api.table(base_id, "Tasks")
        first = t.create({"Name": "one"})
        t.batch_create([{"Name": f"b{index}"} for index in range(12)])  # two requests: 10 and 2
        for index in range(5):
            t.update(first["id"], {"Score": index})
        t.delete(first["id"])

        webhook = base.webhook(created.id)
        assert webhook.is_hook_enabled and webhook.are_notifications_enabled
        payloads = list(webhook.payloads())
        assert [payload.cursor for payload in payloads] == list(range(1, 10))
        created_counts = [
            len(payload.changed_tables_by_id[table["id"]].created_records_by_id) for payload in payloads[:3]
        ]
        assert created_counts == [1, 10, 2]
        score_id = next(field["id"] for field in table["fields"] if field["name"] == "Score")
        changes = [payload.changed_tables_by_id[table["id"]].changed_records_by_id[first["id"]] for payload in payloads[3:8]]
        assert [change.current.cell_values_by_field_id[score_id] for change in changes] == [0, 1, 2, 3, 4]
        assert payloads[8].changed_tables_by_id[table["id"]].destroyed_record_ids == [first["id"]]
        # From a later cursor, only what follows.
        assert [payload.cursor for payload in webhook.payloads(cursor=8)] == [8, 9]

        deadline = time.monotonic() + 30
        while not pings and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pings, "no ping arrived within 30 s"
        body, mac = pings[0]
        notification = WebhookNotification.from_request(body, mac, created.mac_secret_base64)
        assert notification.base.id == base_id and notification.webhook.id == created.id
        with pytest.raises(ValueError):
            WebhookNotification.from_request(body, "hmac-sha256=00", created.mac_secret_base64)

        webhook.disable_notifications()
        assert not base.webhook(created.id).are_notifications_enabled
        webhook.extend_expiration()
        webhook.delete()
        assert all(hook.id != created.id for hook in base.webhooks())
    finally:
        receiver.shutdown()
        receiver.server_close()


def test_comments(server, account, tasks):
    """Record comments: add (with a mention), list newest first, edit, delete."""
    base, _ = tasks
    t = api_for(server, account).table(base, "Tasks")
    record = t.create({"Name": "discussed"})
    comment = t.add_comment(record["id"], f"Please look, @[{account.user_id}]")
    assert comment.id.startswith("com") and comment.author.id == account.user_id
    assert list(comment.mentioned) == [account.user_id]
    t.add_comment(record["id"], "second")
    comments = t.comments(record["id"])
    assert [item.text for item in comments] == ["second", f"Please look, @[{account.user_id}]"]
    comment.text = "edited"
    comment.save()
    assert comment.last_updated_time is not None
    assert [item.text for item in t.comments(record["id"])] == ["second", "edited"]
    comment.delete()
    assert [item.text for item in t.comments(record["id"])] == ["second"]
    counted = t.all(formula=F.match({"Name": "discussed"}), count_comments=True)
    assert counted[0]["commentCount"] == 1
