-- A site's page sessions, kept in the database so that they last on a reception PC or phone
-- for weeks, survive a restart and are the same on every replica. Only the SHA-256 of the
-- session id is kept; `key_generation` is the site's access-key hash when the session began.
CREATE TABLE site_sessions (
    id_hash          TEXT PRIMARY KEY,
    institution_code TEXT NOT NULL REFERENCES institutions (code),
    key_generation   TEXT NOT NULL,
    csrf             TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    seen_at          TEXT NOT NULL
);
CREATE INDEX site_sessions_site ON site_sessions (institution_code, seen_at);
CREATE INDEX site_sessions_seen ON site_sessions (seen_at);
