-- onshi schema, version 1, as SQLite reads it (postgres/0001_init.sql is the same schema in
-- PostgreSQL's words). Instants are RFC 3339 UTC text with millisecond precision
-- (2026-01-19T11:00:00.000Z), so text order is time order.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE institutions (
    code                TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    kind                TEXT NOT NULL,
    prefecture          INTEGER NOT NULL,
    email               TEXT NOT NULL,
    auto_restart        TEXT,
    enrollment_key_hash TEXT,
    access_key_hash     TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);
CREATE INDEX institutions_prefecture ON institutions (prefecture);
CREATE INDEX institutions_access_key ON institutions (access_key_hash);

CREATE TABLE devices (
    id                INTEGER PRIMARY KEY,
    institution_code  TEXT NOT NULL REFERENCES institutions (code),
    kind              TEXT NOT NULL,
    vendor            TEXT,
    serial            TEXT NOT NULL,
    parent_id         INTEGER REFERENCES devices (id),
    token_hash        TEXT NOT NULL UNIQUE,
    installed_version TEXT,
    running_version   TEXT,
    last_contact      TEXT,
    enrolled_at       TEXT NOT NULL,
    UNIQUE (institution_code, kind, serial)
);
CREATE INDEX devices_institution ON devices (institution_code);

CREATE TABLE artifacts (
    sha256     TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE releases (
    id         TEXT PRIMARY KEY,
    version    TEXT NOT NULL,
    manifest   TEXT NOT NULL,
    signature  TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE campaigns (
    id               TEXT PRIMARY KEY,
    schedule         TEXT NOT NULL,
    release_id       TEXT NOT NULL REFERENCES releases (id),
    selector         TEXT NOT NULL,
    max_downloads    INTEGER NOT NULL,
    poll_seconds     INTEGER NOT NULL,
    status           TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);

CREATE TABLE deployments (
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    device_id   INTEGER NOT NULL REFERENCES devices (id),
    state       TEXT NOT NULL,
    bytes       INTEGER NOT NULL DEFAULT 0,
    last_seq    INTEGER NOT NULL DEFAULT 0,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (campaign_id, device_id)
);
CREATE INDEX deployments_device ON deployments (device_id);
CREATE INDEX deployments_state ON deployments (campaign_id, state);

CREATE TABLE leases (
    campaign_id TEXT NOT NULL,
    device_id   INTEGER NOT NULL,
    expires_at  TEXT NOT NULL,
    PRIMARY KEY (campaign_id, device_id)
);

CREATE TABLE audit (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT NOT NULL
);
