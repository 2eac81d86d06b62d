/// The PostgreSQL schema, as numbered migrations of single statements. Timestamps are milliseconds
/// since 1970 (`BIGINT`) and JSON is kept as the exact text written, as in the SQLite store, so both
/// answer the same bytes.
///
/// Every instance runs the migrations at start inside one transaction holding an advisory lock:
/// instances that start together wait for the first, then find nothing left to do.
enum PostgresMigrations {
    struct Migration: Sendable {
        var id: String
        var statements: [String]
    }

    /// The advisory lock key migrations hold (`pyat` in ASCII, then 1).
    static let lockKey: Int64 = 0x7079_6174_0000_0001

    static let all: [Migration] = [
        Migration(
            id: "v1",
            statements: [
                """
                CREATE TABLE server_state (
                    key TEXT PRIMARY KEY,
                    value TEXT NOT NULL
                )
                """,
                """
                CREATE TABLE users (
                    id TEXT PRIMARY KEY,
                    email TEXT NOT NULL,
                    name TEXT NOT NULL,
                    password_hash TEXT NOT NULL,
                    version BIGINT NOT NULL DEFAULT 1,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL
                )
                """,
                // SQLite's `COLLATE NOCASE` folds ASCII only; so does this index's expression's use.
                "CREATE UNIQUE INDEX users_email ON users (lower(email))",
                """
                CREATE TABLE refresh_tokens (
                    token_hash TEXT PRIMARY KEY,
                    family_id TEXT NOT NULL,
                    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    created_at BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL,
                    used_at BIGINT,
                    revoked_at BIGINT
                )
                """,
                "CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id)",
                "CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id)",
                """
                CREATE TABLE access_tokens (
                    id TEXT PRIMARY KEY,
                    ord BIGINT GENERATED ALWAYS AS IDENTITY,
                    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    token_hash TEXT NOT NULL UNIQUE,
                    created_at BIGINT NOT NULL,
                    expires_at BIGINT,
                    last_used_at BIGINT
                )
                """,
                "CREATE INDEX access_tokens_user ON access_tokens (user_id)",
                """
                CREATE TABLE workspaces (
                    id TEXT PRIMARY KEY,
                    ord BIGINT GENERATED ALWAYS AS IDENTITY,
                    name TEXT NOT NULL,
                    version BIGINT NOT NULL DEFAULT 1,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL
                )
                """,
                """
                CREATE TABLE members (
                    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
                    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    role TEXT NOT NULL,
                    added_at BIGINT NOT NULL,
                    PRIMARY KEY (workspace_id, user_id)
                )
                """,
                "CREATE INDEX members_user ON members (user_id)",
                """
                CREATE TABLE bases (
                    id TEXT PRIMARY KEY,
                    ord BIGINT GENERATED ALWAYS AS IDENTITY,
                    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    version BIGINT NOT NULL DEFAULT 1,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX bases_workspace ON bases (workspace_id)",
                """
                CREATE TABLE tables (
                    id TEXT PRIMARY KEY,
                    ord BIGINT GENERATED ALWAYS AS IDENTITY,
                    base_id TEXT NOT NULL REFERENCES bases(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    description TEXT,
                    primary_field_id TEXT NOT NULL,
                    version BIGINT NOT NULL DEFAULT 1,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX tables_base ON tables (base_id)",
                """
                CREATE TABLE fields (
                    id TEXT PRIMARY KEY,
                    ord BIGINT GENERATED ALWAYS AS IDENTITY,
                    table_id TEXT NOT NULL REFERENCES tables(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    type TEXT NOT NULL,
                    options TEXT,
                    description TEXT,
                    position BIGINT NOT NULL,
                    version BIGINT NOT NULL DEFAULT 1,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL,
                    UNIQUE (table_id, name)
                )
                """,
                """
                CREATE TABLE views (
                    id TEXT PRIMARY KEY,
                    ord BIGINT GENERATED ALWAYS AS IDENTITY,
                    table_id TEXT NOT NULL REFERENCES tables(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    type TEXT NOT NULL,
                    filter TEXT,
                    sort TEXT,
                    visible_fields TEXT,
                    position BIGINT NOT NULL,
                    version BIGINT NOT NULL DEFAULT 1,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL,
                    UNIQUE (table_id, name)
                )
                """,
                // Record order is insertion order (`seq`); record seqs need no commit order.
                """
                CREATE TABLE records (
                    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    id TEXT NOT NULL UNIQUE,
                    table_id TEXT NOT NULL REFERENCES tables(id) ON DELETE CASCADE,
                    fields TEXT NOT NULL,
                    version BIGINT NOT NULL DEFAULT 1,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX records_table_seq ON records (table_id, seq)",
                // The log's head: one row, advanced by the last statement of every write transaction
                // that appends events, so event seqs are handed out in commit order with no gap.
                """
                CREATE TABLE event_head (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    seq BIGINT NOT NULL
                )
                """,
                "INSERT INTO event_head (id, seq) VALUES (1, 0)",
                """
                CREATE TABLE events (
                    seq BIGINT PRIMARY KEY,
                    type TEXT NOT NULL,
                    workspace_id TEXT,
                    base_id TEXT,
                    table_id TEXT,
                    record_id TEXT,
                    payload TEXT NOT NULL,
                    actor TEXT,
                    ts BIGINT NOT NULL,
                    txn BIGINT
                )
                """,
                "CREATE INDEX events_table ON events (table_id, seq)",
                "CREATE INDEX events_workspace ON events (workspace_id, seq)",
                "CREATE INDEX events_record ON events (record_id, seq) WHERE record_id IS NOT NULL",
                "CREATE INDEX events_base ON events (base_id, seq) WHERE base_id IS NOT NULL",
                "CREATE INDEX events_ts ON events (ts)",
                """
                CREATE TABLE event_recipients (
                    seq BIGINT NOT NULL REFERENCES events(seq) ON DELETE CASCADE,
                    user_id TEXT NOT NULL,
                    PRIMARY KEY (user_id, seq)
                )
                """,
                "CREATE INDEX event_recipients_seq ON event_recipients (seq)",
                """
                CREATE TABLE idempotency_keys (
                    principal TEXT NOT NULL,
                    key TEXT NOT NULL,
                    request_hash TEXT NOT NULL,
                    status BIGINT NOT NULL,
                    body BYTEA NOT NULL,
                    etag TEXT,
                    created_at BIGINT NOT NULL,
                    PRIMARY KEY (principal, key)
                )
                """,
                "CREATE INDEX idempotency_created ON idempotency_keys (created_at)",
                """
                CREATE TABLE webhooks (
                    id TEXT PRIMARY KEY,
                    ord BIGINT GENERATED ALWAYS AS IDENTITY,
                    base_id TEXT NOT NULL REFERENCES bases(id) ON DELETE CASCADE,
                    workspace_id TEXT NOT NULL,
                    url TEXT NOT NULL,
                    events TEXT NOT NULL,
                    table_id TEXT,
                    sealed_secret BYTEA NOT NULL,
                    enabled BOOLEAN NOT NULL DEFAULT TRUE,
                    disabled_reason TEXT,
                    failure_count BIGINT NOT NULL DEFAULT 0,
                    first_failure_at BIGINT,
                    cursor BIGINT NOT NULL,
                    created_by TEXT,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX webhooks_base ON webhooks (base_id, created_at)",
                """
                CREATE TABLE webhook_deliveries (
                    id TEXT PRIMARY KEY,
                    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
                    event_seq BIGINT NOT NULL,
                    event_type TEXT NOT NULL,
                    body BYTEA NOT NULL,
                    status TEXT NOT NULL,
                    attempts BIGINT NOT NULL DEFAULT 0,
                    response_status BIGINT,
                    error TEXT,
                    created_at BIGINT NOT NULL,
                    last_attempt_at BIGINT,
                    next_attempt_at BIGINT,
                    delivered_at BIGINT,
                    UNIQUE (webhook_id, event_seq)
                )
                """,
                "CREATE INDEX webhook_deliveries_status ON webhook_deliveries (webhook_id, status, event_seq)",
                """
                CREATE TABLE blobs (
                    sha256 TEXT PRIMARY KEY,
                    size BIGINT NOT NULL,
                    ref_count BIGINT NOT NULL,
                    created_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX blobs_unreferenced ON blobs (ref_count) WHERE ref_count <= 0",
                """
                CREATE TABLE files (
                    id TEXT PRIMARY KEY,
                    ord BIGINT GENERATED ALWAYS AS IDENTITY,
                    name TEXT NOT NULL,
                    content_type TEXT NOT NULL,
                    size BIGINT NOT NULL,
                    sha256 TEXT NOT NULL REFERENCES blobs(sha256),
                    workspace_id TEXT REFERENCES workspaces(id) ON DELETE CASCADE,
                    created_by TEXT NOT NULL,
                    created_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX files_workspace ON files (workspace_id, created_at)",
                "CREATE INDEX files_creator ON files (created_by, created_at)",
                "CREATE INDEX files_sha256 ON files (sha256)",
                // A blob's count follows its files whether they go one by one or by cascade.
                """
                CREATE FUNCTION files_release_blob() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    UPDATE blobs SET ref_count = ref_count - 1 WHERE sha256 = OLD.sha256;
                    RETURN OLD;
                END
                $$
                """,
                """
                CREATE TRIGGER files_release_blob AFTER DELETE ON files
                    FOR EACH ROW EXECUTE FUNCTION files_release_blob()
                """,
                """
                CREATE TABLE airtable_webhooks (
                    id TEXT PRIMARY KEY,
                    ord BIGINT GENERATED ALWAYS AS IDENTITY,
                    base_id TEXT NOT NULL REFERENCES bases(id) ON DELETE CASCADE,
                    workspace_id TEXT NOT NULL,
                    notification_url TEXT,
                    specification TEXT NOT NULL,
                    sealed_secret BYTEA NOT NULL,
                    notifications_enabled BOOLEAN NOT NULL DEFAULT TRUE,
                    expires_at BIGINT NOT NULL,
                    event_cursor BIGINT NOT NULL,
                    next_payload BIGINT NOT NULL DEFAULT 1,
                    pinged_through BIGINT NOT NULL DEFAULT 0,
                    ping_retries BIGINT NOT NULL DEFAULT 0,
                    next_ping_at BIGINT,
                    last_success_at BIGINT,
                    last_result TEXT,
                    created_by TEXT NOT NULL,
                    created_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX airtable_webhooks_base ON airtable_webhooks (base_id, created_at)",
                """
                CREATE TABLE airtable_webhook_payloads (
                    webhook_id TEXT NOT NULL REFERENCES airtable_webhooks(id) ON DELETE CASCADE,
                    number BIGINT NOT NULL,
                    body TEXT NOT NULL,
                    created_at BIGINT NOT NULL,
                    PRIMARY KEY (webhook_id, number)
                )
                """,
                """
                CREATE TABLE comments (
                    id TEXT PRIMARY KEY,
                    ord BIGINT GENERATED ALWAYS AS IDENTITY,
                    record_id TEXT NOT NULL REFERENCES records(id) ON DELETE CASCADE,
                    table_id TEXT NOT NULL,
                    author_id TEXT NOT NULL,
                    text TEXT NOT NULL,
                    mentions TEXT NOT NULL,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT
                )
                """,
                "CREATE INDEX comments_record ON comments (record_id, ord)",
            ]
        ),
        Migration(
            id: "v2",
            statements: [
                // Counts the commits that changed webhooks, so an instance that missed the
                // notification of one (its listen connection was down) learns of it from its poll.
                "ALTER TABLE event_head ADD COLUMN webhooks_changes BIGINT NOT NULL DEFAULT 0"
            ]
        ),
        Migration(
            id: "v3",
            statements: [
                // Fails the commit's statement of a batch without a transaction whose idempotency
                // key is taken: nothing of the statement is written, and the batch runs again in a
                // transaction, which replays the key's answer.
                """
                CREATE FUNCTION pyat_key_taken() RETURNS text LANGUAGE plpgsql AS $$
                BEGIN
                    RAISE EXCEPTION 'an idempotency key of the batch is taken' USING ERRCODE = 'PK001';
                END
                $$
                """
            ]
        ),
        Migration(
            id: "v4-mirror",
            statements: [
                // The snapshot each mirrored base serves (mirror mode).
                """
                CREATE TABLE mirror_bases (
                    base_id TEXT PRIMARY KEY,
                    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
                    upstream TEXT NOT NULL,
                    generation BIGINT NOT NULL,
                    sync_id TEXT NOT NULL,
                    completed_at BIGINT NOT NULL,
                    tables BIGINT NOT NULL,
                    records BIGINT NOT NULL,
                    digest TEXT NOT NULL
                )
                """,
                // The transactions (`txn`) of mirror mode's own writes, while they run (never committed).
                "CREATE TABLE mirror_writing (txn BIGINT PRIMARY KEY)",
                // Refuses an event of a write to a mirrored base other than the mirror's own. The
                // trigger on `events` is made by the first apply of a mirror (servers that never
                // mirror pay nothing per event).
                """
                CREATE FUNCTION pyat_mirror_guard() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF EXISTS (SELECT 1 FROM mirror_bases WHERE base_id = NEW.base_id)
                        AND NOT EXISTS (SELECT 1 FROM mirror_writing WHERE txn = NEW.txn) THEN
                        RAISE EXCEPTION 'pyat: read-only mirror' USING ERRCODE = 'PYM01';
                    END IF;
                    RETURN NEW;
                END
                $$
                """,
            ]
        ),
    ]

    /// Made by the first apply of a mirror (see migration v4-mirror).
    static let mirrorTrigger = """
        CREATE OR REPLACE TRIGGER mirror_read_only BEFORE INSERT ON events FOR EACH ROW
        WHEN (NEW.base_id IS NOT NULL AND NEW.type IN ('base.updated', 'base.deleted', 'table.created', 'table.updated', 'table.deleted', 'field.created', 'field.updated', 'field.deleted', 'view.created', 'view.updated', 'view.deleted', 'record.created', 'record.updated', 'record.deleted', 'comment.created', 'comment.updated', 'comment.deleted'))
        EXECUTE FUNCTION pyat_mirror_guard()
        """
}
