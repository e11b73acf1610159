-- Webhooks and the durable outbox: every delivery is written in the transaction of the change
-- that causes it; workers claim due rows, retry with backoff, and dead-letter the last failure.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    secret TEXT NOT NULL,
    description TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhooks_org ON webhooks (org_id);
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    locked_until BIGINT NOT NULL,
    last_error TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_org_state ON deliveries (org_id, state, created_at);
-- Slack messages posted for access requests, so approvals can update them.
CREATE TABLE slack_messages (
    org_id TEXT NOT NULL,
    access_request_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    ts TEXT NOT NULL,
    PRIMARY KEY (org_id, access_request_id)
);
-- Groups whose members may approve a resource's access requests (empty: org admins).
ALTER TABLE resources ADD COLUMN approver_groups TEXT NOT NULL DEFAULT '[]';
-- When a connector's `connector.offline` event was queued (NULL: not since it was last seen).
ALTER TABLE connectors ADD COLUMN offline_announced_at BIGINT;
