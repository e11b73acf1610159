-- MCP tool pinning (`pin_tools`): the definition of each tool as first listed through Gate, and a
-- changed definition the upstream later served, waiting for an admin's approval. Digests are the
-- SHA-256 (hex) of the tool's canonical JSON; definitions are that JSON.
CREATE TABLE mcp_tool_pins (
    org_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    tool TEXT NOT NULL,
    pinned_digest TEXT NOT NULL,
    pinned_definition TEXT NOT NULL,
    pending_digest TEXT NOT NULL DEFAULT '',
    pending_definition TEXT NOT NULL DEFAULT '',
    first_seen_at BIGINT NOT NULL,
    changed_at BIGINT,
    approved_by TEXT NOT NULL DEFAULT '',
    approved_at BIGINT,
    PRIMARY KEY (org_id, resource, tool)
);
