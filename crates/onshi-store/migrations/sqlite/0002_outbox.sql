-- The notices outbox: every mail is a row before it is sent, unique per site, campaign, kind and
-- key ("once" or the Japan date), so a notice is planned once however often (and by however many
-- workers) the plan runs. A claimed row's next_attempt_at is pushed ahead; a worker that dies
-- mid-send leaves it to be retried when that claim runs out.

CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    campaign_id      TEXT NOT NULL,
    institution_code TEXT NOT NULL REFERENCES institutions (code),
    kind             TEXT NOT NULL,
    notice_key       TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    subject          TEXT NOT NULL,
    body             TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    sent_at          TEXT,
    UNIQUE (campaign_id, institution_code, kind, notice_key)
);
CREATE INDEX outbox_pending ON outbox (sent_at, next_attempt_at);
CREATE INDEX outbox_institution ON outbox (institution_code);
