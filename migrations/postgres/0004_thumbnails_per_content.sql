-- One thumbnail per content (the SHA-256 of the image's bytes), not one per job: repeats of the
-- same bytes, by one user or many, store nothing new. A job shows its thumbnail once it is done.
CREATE TABLE thumbnails (
    sha256 TEXT PRIMARY KEY,
    jpeg BYTEA NOT NULL,
    created_ms BIGINT NOT NULL
);
INSERT INTO thumbnails (sha256, jpeg, created_ms)
    SELECT DISTINCT ON (sha256) sha256, thumbnail, created_ms FROM predictions
    WHERE thumbnail IS NOT NULL ORDER BY sha256, created_ms
    ON CONFLICT (sha256) DO NOTHING;
ALTER TABLE predictions DROP COLUMN thumbnail;
CREATE INDEX predictions_sha256 ON predictions (sha256);
