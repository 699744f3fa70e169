-- One thumbnail per content (the SHA-256 of the image's bytes), not one per job: repeats of the
-- same bytes, by one user or many, store nothing new. A job shows its thumbnail once it is done.
CREATE TABLE thumbnails (
    sha256 TEXT PRIMARY KEY,
    jpeg BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
INSERT OR IGNORE INTO thumbnails (sha256, jpeg, created_ms)
    SELECT sha256, thumbnail, created_ms FROM predictions
    WHERE thumbnail IS NOT NULL ORDER BY created_ms;
ALTER TABLE predictions DROP COLUMN thumbnail;
CREATE INDEX predictions_sha256 ON predictions (sha256);
