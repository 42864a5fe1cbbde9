-- Waves and health gates (段階配信, onshi_core::waves): which wave each site of a campaign is in,
-- how far the campaign's waves are (one JSON value, changed compare-and-set so that two replicas
-- judging the same gate hold the campaign, audit and mail the operator once), what each
-- terminal's self-check said after its restart, and the operator's mails.

CREATE TABLE wave_sites (
    campaign_id      TEXT NOT NULL REFERENCES campaigns (id),
    institution_code TEXT NOT NULL,
    wave             INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, institution_code)
);

CREATE TABLE wave_progress (
    campaign_id TEXT PRIMARY KEY REFERENCES campaigns (id),
    progress    TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- 'healthy' or 'unhealthy': the self-check of the applied version after the restart.
ALTER TABLE deployments ADD COLUMN health TEXT;
-- The first restart reported after the install without the new version running.
ALTER TABLE deployments ADD COLUMN restarted_at TEXT;

-- Mails to the operator (a gate held a campaign): unique per campaign and key, sent like the
-- sites' outbox.
CREATE TABLE operator_outbox (
    id              INTEGER PRIMARY KEY,
    campaign_id     TEXT NOT NULL,
    notice_key      TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT,
    UNIQUE (campaign_id, notice_key)
);
CREATE INDEX operator_outbox_pending ON operator_outbox (sent_at, next_attempt_at);
