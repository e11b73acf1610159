-- Audit event ids are unique per organization, not across them: a connector key
-- of one organization cannot learn whether an id exists in another.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_pkey;
ALTER TABLE audit_events ADD PRIMARY KEY (org_id, id);
