-- TiGateway admin store, mysql: users, roles, API tokens and settings.
-- Only hashes are stored: passwords as Argon2id PHC strings, API tokens as SHA-256 hex. Role
-- permissions are a JSON list of [resource, action] pairs. Times are UTC ISO-8601 strings of one
-- fixed width (as in 0001), so they also order correctly as text.
-- The one row every identity write updates first: it serialises those writers (so "does this
-- name exist yet" checks cannot race) the way config_head does for config writes.
CREATE TABLE identity_head (
    id BIGINT PRIMARY KEY,
    counter BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO identity_head (id, counter) VALUES (1, 0);
-- Per-install settings: `session_secret` (base64, signs every session JWT) and `bootstrapped_at`.
CREATE TABLE admin_setting (
    setting_key VARCHAR(64) NOT NULL PRIMARY KEY,
    setting_value MEDIUMTEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE admin_user (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    username VARCHAR(255) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    enabled BIGINT NOT NULL,
    version BIGINT NOT NULL,
    created_at VARCHAR(40) NOT NULL,
    updated_at VARCHAR(40) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX admin_user_username_idx ON admin_user (username);
CREATE TABLE admin_role (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    permissions MEDIUMTEXT NOT NULL,
    builtin BIGINT NOT NULL,
    version BIGINT NOT NULL,
    created_at VARCHAR(40) NOT NULL,
    updated_at VARCHAR(40) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE admin_user_role (
    user_id VARCHAR(64) NOT NULL,
    role_name VARCHAR(64) NOT NULL,
    PRIMARY KEY (user_id, role_name),
    FOREIGN KEY (user_id) REFERENCES admin_user (id) ON DELETE CASCADE,
    FOREIGN KEY (role_name) REFERENCES admin_role (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX admin_user_role_role_idx ON admin_user_role (role_name);
-- `roles` NULL: the token acts with its owner's roles; otherwise with those of the listed roles
-- the owner still holds.
CREATE TABLE api_token (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    token_hash VARCHAR(64) NOT NULL,
    owner_id VARCHAR(64) NOT NULL,
    roles MEDIUMTEXT,
    created_at VARCHAR(40) NOT NULL,
    expires_at VARCHAR(40),
    revoked_at VARCHAR(40),
    last_used_at VARCHAR(40),
    FOREIGN KEY (owner_id) REFERENCES admin_user (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX api_token_hash_idx ON api_token (token_hash);
CREATE INDEX api_token_owner_idx ON api_token (owner_id);
