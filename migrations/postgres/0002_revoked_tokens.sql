-- Tokens revoked by logging out, by their `jti`, until they would have expired (Unix ms).
CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY,
    expires_ms BIGINT NOT NULL
);
