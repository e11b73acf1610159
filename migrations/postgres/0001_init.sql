-- Gate control-plane store, PostgreSQL. Times are epoch milliseconds.
CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
INSERT INTO organizations (id, name, created_at) VALUES ('default', 'default', 0);

CREATE TABLE org_revisions (
    org_id TEXT PRIMARY KEY,
    revision BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    prefix TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_keys_org ON api_keys (org_id);

CREATE TABLE resources (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    name TEXT NOT NULL,
    protocol TEXT NOT NULL,
    host TEXT NOT NULL,
    port BIGINT NOT NULL,
    database_name TEXT NOT NULL,
    labels TEXT NOT NULL,
    require_access_grant BIGINT NOT NULL,
    origin TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE policies (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    stages TEXT NOT NULL,
    targets TEXT NOT NULL,
    state TEXT NOT NULL,
    version BIGINT NOT NULL,
    latest_version BIGINT NOT NULL,
    origin TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE policy_versions (
    policy_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    rego TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (policy_id, version)
);

CREATE TABLE policy_changes (
    id TEXT PRIMARY KEY,
    policy_id TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    from_version BIGINT NOT NULL,
    to_version BIGINT NOT NULL,
    changed_by TEXT NOT NULL,
    changed_at BIGINT NOT NULL
);
CREATE INDEX policy_changes_policy ON policy_changes (policy_id, changed_at);

CREATE TABLE identities (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    kind TEXT NOT NULL,
    origin TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE identity_groups (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    origin TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE group_members (
    group_id TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    PRIMARY KEY (group_id, identity_id)
);

CREATE TABLE connectors (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    resources TEXT NOT NULL,
    host TEXT NOT NULL,
    registered_at BIGINT NOT NULL,
    last_heartbeat_at BIGINT NOT NULL,
    deregistered_at BIGINT,
    UNIQUE (org_id, name)
);

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    time BIGINT NOT NULL,
    connector TEXT NOT NULL,
    identity TEXT NOT NULL,
    resource TEXT NOT NULL,
    protocol TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    stage TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    statement TEXT NOT NULL,
    policies TEXT NOT NULL,
    row_count BIGINT NOT NULL,
    duration_us BIGINT NOT NULL,
    details TEXT NOT NULL
);
CREATE INDEX audit_events_org_time ON audit_events (org_id, time, id);

CREATE TABLE signing_keys (
    id TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    private_key TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
