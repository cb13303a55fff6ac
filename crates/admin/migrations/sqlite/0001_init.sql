-- TiGateway admin store, sqlite: initial schema.
-- Entity tables keep the whole model object as JSON in `body` (selector and rule conditions, app
-- auth paths and params, route predicates and filters live there); the other columns are derived
-- from it for listing, filtering and optimistic locking. `seq` keeps document order, which route
-- matching depends on.
CREATE TABLE config_head (
    id INTEGER PRIMARY KEY,
    revision INTEGER NOT NULL
);
-- The one row every write updates first: it serialises writers and numbers revisions.
INSERT INTO config_head (id, revision) VALUES (1, 0);
CREATE TABLE plugin (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    plugin_name TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    sort INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at VARCHAR(40) NOT NULL,
    updated_at VARCHAR(40) NOT NULL
);
CREATE INDEX plugin_seq_idx ON plugin (seq);
CREATE TABLE selector (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    plugin_name TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    sort INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at VARCHAR(40) NOT NULL,
    updated_at VARCHAR(40) NOT NULL
);
CREATE INDEX selector_seq_idx ON selector (seq);
CREATE TABLE rule (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    plugin_name TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    sort INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at VARCHAR(40) NOT NULL,
    updated_at VARCHAR(40) NOT NULL
);
CREATE INDEX rule_seq_idx ON rule (seq);
CREATE TABLE meta_data (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    plugin_name TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    sort INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at VARCHAR(40) NOT NULL,
    updated_at VARCHAR(40) NOT NULL
);
CREATE INDEX meta_data_seq_idx ON meta_data (seq);
CREATE TABLE app_auth (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    plugin_name TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    sort INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at VARCHAR(40) NOT NULL,
    updated_at VARCHAR(40) NOT NULL
);
CREATE INDEX app_auth_seq_idx ON app_auth (seq);
CREATE TABLE route (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    plugin_name TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    sort INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at VARCHAR(40) NOT NULL,
    updated_at VARCHAR(40) NOT NULL
);
CREATE INDEX route_seq_idx ON route (seq);
CREATE INDEX rule_parent_idx ON rule (parent_id);
CREATE TABLE config_revision (
    revision INTEGER NOT NULL PRIMARY KEY,
    config TEXT NOT NULL,
    actor TEXT NOT NULL,
    operation VARCHAR(32) NOT NULL,
    created_at VARCHAR(40) NOT NULL
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    revision INTEGER NOT NULL,
    at VARCHAR(40) NOT NULL,
    actor TEXT NOT NULL,
    operation VARCHAR(32) NOT NULL,
    action VARCHAR(16) NOT NULL,
    entity_type VARCHAR(32) NOT NULL,
    entity_id TEXT NOT NULL,
    before_json TEXT,
    after_json TEXT
);
CREATE INDEX audit_revision_idx ON audit (revision);
CREATE INDEX audit_entity_idx ON audit (entity_type, entity_id);
