-- Audit event ids are unique per organization, not across them: a connector key
-- of one organization cannot learn whether an id exists in another. SQLite
-- cannot change a primary key in place, so the table is rebuilt.
CREATE TABLE audit_events_by_org (
    id TEXT NOT NULL,
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
    details TEXT NOT NULL,
    PRIMARY KEY (org_id, id)
);
INSERT INTO audit_events_by_org (id, org_id, time, connector, identity, resource, protocol,
    client_addr, stage, action, reason, statement, policies, row_count, duration_us, details)
SELECT id, org_id, time, connector, identity, resource, protocol,
    client_addr, stage, action, reason, statement, policies, row_count, duration_us, details
FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_by_org RENAME TO audit_events;
CREATE INDEX audit_events_org_time ON audit_events (org_id, time, id);
