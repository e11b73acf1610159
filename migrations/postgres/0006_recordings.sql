-- Session recordings uploaded by connectors: the metadata here, the file under the control
-- plane's recording.dir as <org>/<id>.cast. Ids are the connector's UUIDv7, unique per
-- organization, so a retried upload is stored once.
CREATE TABLE recordings (
    id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    connector TEXT NOT NULL,
    identity TEXT NOT NULL,
    resource TEXT NOT NULL,
    protocol TEXT NOT NULL,
    format TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT NOT NULL,
    size_bytes BIGINT NOT NULL,
    width BIGINT NOT NULL,
    height BIGINT NOT NULL,
    command TEXT NOT NULL,
    exit_status BIGINT,
    interrupted BIGINT NOT NULL,
    stored_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX recordings_org_started ON recordings (org_id, started_at, id);
CREATE INDEX recordings_ended ON recordings (ended_at);
