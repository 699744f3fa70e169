-- Collections: a user's named set of images classified together (issue 19). An item is one
-- file of the collection by its relative path; it points at the job (the history row) that
-- classifies its bytes, which for a duplicate (the same bytes as an earlier item) is that
-- item's job. The collection's counts and its top-1 histogram are kept as the recorder writes
-- outcomes, in the same transaction, so reading them never scans the items.
CREATE TABLE collections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    top_k INTEGER NOT NULL,
    min_confidence REAL NOT NULL,
    created_ms INTEGER NOT NULL,
    first_activity_ms INTEGER,
    last_activity_ms INTEGER,
    items INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    uncertain INTEGER NOT NULL DEFAULT 0,
    UNIQUE (user_id, name)
);
CREATE TABLE collection_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    job_id TEXT NOT NULL,
    duplicate INTEGER NOT NULL DEFAULT 0,
    finished INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    UNIQUE (collection_id, path)
);
CREATE INDEX collection_items_job ON collection_items (job_id);
CREATE INDEX collection_items_sha ON collection_items (collection_id, sha256);
CREATE TABLE collection_labels (
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (collection_id, label)
);
