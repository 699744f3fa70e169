-- Users, their predictions (history) and feedback. Times are Unix milliseconds.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
);

CREATE TABLE predictions (
    job_id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    image_file_name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    model TEXT NOT NULL,
    top_k INTEGER NOT NULL,
    status TEXT NOT NULL,
    cached INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    error TEXT,
    top_label TEXT,
    top_score REAL,
    elapsed_ms REAL,
    thumbnail BLOB,
    created_ms INTEGER NOT NULL,
    finished_ms INTEGER
);
CREATE INDEX predictions_user_created ON predictions (user_id, created_ms DESC);

CREATE TABLE feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    job_id TEXT,
    image_file_name TEXT NOT NULL,
    predicted_class TEXT NOT NULL,
    score REAL NOT NULL,
    feedback TEXT NOT NULL,
    correct_label TEXT,
    is_correct INTEGER,
    created_ms INTEGER NOT NULL
);
CREATE INDEX feedback_user_created ON feedback (user_id, created_ms DESC);
