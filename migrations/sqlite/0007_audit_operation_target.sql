-- What an event acted on, for queries: `operation` and `target` from the event's details
-- (MCP: details.mcp.operation / details.mcp.target); empty for events without them.
ALTER TABLE audit_events ADD COLUMN operation TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_events ADD COLUMN target TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_events_operation ON audit_events (org_id, operation, time);
