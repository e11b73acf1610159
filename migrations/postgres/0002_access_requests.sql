-- Just-in-time access requests; approved, unexpired ones are grants.
CREATE TABLE access_requests (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    subject TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    reason TEXT NOT NULL,
    duration_seconds BIGINT NOT NULL,
    scopes TEXT NOT NULL,
    status TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    denied_by TEXT NOT NULL,
    revoked_by TEXT NOT NULL,
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX access_requests_org_status ON access_requests (org_id, status);
