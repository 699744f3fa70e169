-- Collections: a user's named set of images classified together (issue 19). An item is one
-- file of the collection by its relative path; it points at the job (the history row) that
-- classifies its bytes, which for a duplicate (the same bytes as an earlier item) is that
-- item's job. The collection's counts and its top-1 histogram are kept as the recorder writes
-- outcomes, in the same transaction, so reading them never scans the items.
CREATE TABLE collections (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    top_k BIGINT NOT NULL,
    min_confidence DOUBLE PRECISION NOT NULL,
    created_ms BIGINT NOT NULL,
    first_activity_ms BIGINT,
    last_activity_ms BIGINT,
    items BIGINT NOT NULL DEFAULT 0,
    duplicates BIGINT NOT NULL DEFAULT 0,
    done BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    uncertain BIGINT NOT NULL DEFAULT 0,
    UNIQUE (user_id, name)
);
CREATE TABLE collection_items (
    id BIGSERIAL PRIMARY KEY,
    collection_id BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    job_id TEXT NOT NULL,
    duplicate BIGINT NOT NULL DEFAULT 0,
    finished BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL,
    UNIQUE (collection_id, path)
);
CREATE INDEX collection_items_job ON collection_items (job_id);
CREATE INDEX collection_items_sha ON collection_items (collection_id, sha256);
CREATE TABLE collection_labels (
    collection_id BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (collection_id, label)
);
