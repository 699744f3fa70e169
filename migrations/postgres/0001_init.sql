-- Users, their predictions (history) and feedback. Times are Unix milliseconds.
CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL
);

CREATE TABLE predictions (
    job_id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    image_file_name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    model TEXT NOT NULL,
    top_k BIGINT NOT NULL,
    status TEXT NOT NULL,
    cached BIGINT NOT NULL DEFAULT 0,
    result TEXT,
    error TEXT,
    top_label TEXT,
    top_score DOUBLE PRECISION,
    elapsed_ms DOUBLE PRECISION,
    thumbnail BYTEA,
    created_ms BIGINT NOT NULL,
    finished_ms BIGINT
);
CREATE INDEX predictions_user_created ON predictions (user_id, created_ms DESC);

CREATE TABLE feedback (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    job_id TEXT,
    image_file_name TEXT NOT NULL,
    predicted_class TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    feedback TEXT NOT NULL,
    correct_label TEXT,
    is_correct BIGINT,
    created_ms BIGINT NOT NULL
);
CREATE INDEX feedback_user_created ON feedback (user_id, created_ms DESC);
