-- TiGateway admin store, mysql: initial schema.
-- Entity tables keep the whole model object as JSON in `body` (selector and rule conditions, app
-- auth paths and params, route predicates and filters live there); the other columns are derived
-- from it for listing, filtering and optimistic locking. `seq` keeps document order, which route
-- matching depends on.
CREATE TABLE config_head (
    id BIGINT PRIMARY KEY,
    revision BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- The one row every write updates first: it serialises writers and numbers revisions.
INSERT INTO config_head (id, revision) VALUES (1, 0);
CREATE TABLE plugin (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    plugin_name VARCHAR(255) NOT NULL,
    parent_id VARCHAR(255) NOT NULL,
    sort BIGINT NOT NULL,
    enabled BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    version BIGINT NOT NULL,
    body MEDIUMTEXT NOT NULL,
    created_at VARCHAR(40) NOT NULL,
    updated_at VARCHAR(40) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX plugin_seq_idx ON plugin (seq);
CREATE TABLE selector (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    plugin_name VARCHAR(255) NOT NULL,
    parent_id VARCHAR(255) NOT NULL,
    sort BIGINT NOT NULL,
    enabled BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    version BIGINT NOT NULL,
    body MEDIUMTEXT NOT NULL,
    created_at VARCHAR(40) NOT NULL,
    updated_at VARCHAR(40) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX selector_seq_idx ON selector (seq);
CREATE TABLE rule (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    plugin_name VARCHAR(255) NOT NULL,
    parent_id VARCHAR(255) NOT NULL,
    sort BIGINT NOT NULL,
    enabled BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    version BIGINT NOT NULL,
    body MEDIUMTEXT NOT NULL,
    created_at VARCHAR(40) NOT NULL,
    updated_at VARCHAR(40) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX rule_seq_idx ON rule (seq);
CREATE TABLE meta_data (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    plugin_name VARCHAR(255) NOT NULL,
    parent_id VARCHAR(255) NOT NULL,
    sort BIGINT NOT NULL,
    enabled BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    version BIGINT NOT NULL,
    body MEDIUMTEXT NOT NULL,
    created_at VARCHAR(40) NOT NULL,
    updated_at VARCHAR(40) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX meta_data_seq_idx ON meta_data (seq);
CREATE TABLE app_auth (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    plugin_name VARCHAR(255) NOT NULL,
    parent_id VARCHAR(255) NOT NULL,
    sort BIGINT NOT NULL,
    enabled BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    version BIGINT NOT NULL,
    body MEDIUMTEXT NOT NULL,
    created_at VARCHAR(40) NOT NULL,
    updated_at VARCHAR(40) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX app_auth_seq_idx ON app_auth (seq);
CREATE TABLE route (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    plugin_name VARCHAR(255) NOT NULL,
    parent_id VARCHAR(255) NOT NULL,
    sort BIGINT NOT NULL,
    enabled BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    version BIGINT NOT NULL,
    body MEDIUMTEXT NOT NULL,
    created_at VARCHAR(40) NOT NULL,
    updated_at VARCHAR(40) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX route_seq_idx ON route (seq);
CREATE INDEX rule_parent_idx ON rule (parent_id);
CREATE TABLE config_revision (
    revision BIGINT NOT NULL PRIMARY KEY,
    config LONGTEXT NOT NULL,
    actor VARCHAR(255) NOT NULL,
    operation VARCHAR(32) NOT NULL,
    created_at VARCHAR(40) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE audit (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    revision BIGINT NOT NULL,
    at VARCHAR(40) NOT NULL,
    actor VARCHAR(255) NOT NULL,
    operation VARCHAR(32) NOT NULL,
    action VARCHAR(16) NOT NULL,
    entity_type VARCHAR(32) NOT NULL,
    entity_id VARCHAR(255) NOT NULL,
    before_json MEDIUMTEXT,
    after_json MEDIUMTEXT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX audit_revision_idx ON audit (revision);
CREATE INDEX audit_entity_idx ON audit (entity_type, entity_id);
