-- TiGateway admin store, sqlite: session revocation.
-- A session JWT issued at or before a user's `sessions_after` (unix seconds) is refused: set on
-- password change and by "revoke all sessions". Single sessions (logout) are listed by their JWT id
-- until they would have expired anyway.
ALTER TABLE admin_user ADD COLUMN sessions_after INTEGER NOT NULL DEFAULT 0;
CREATE TABLE admin_session_revoked (
    jti VARCHAR(64) NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
