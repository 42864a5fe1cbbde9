-- The queue for download slots (onshi_core::appointment) where several replicas share it
-- (PostgreSQL; the SQLite store keeps it in memory and leaves these tables empty): who waits in
-- which window in arrival order, and each campaign's observed slot hold.
CREATE TABLE slot_queue (
    campaign_id     TEXT NOT NULL,
    device_id       BIGINT NOT NULL,
    ticket          BIGINT NOT NULL,
    due_at          TEXT NOT NULL,
    passed_by       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, device_id)
);
CREATE INDEX slot_queue_order ON slot_queue (campaign_id, ticket);

CREATE TABLE slot_turnover (
    campaign_id      TEXT PRIMARY KEY,
    window_opened_at TEXT NOT NULL,
    next_ticket      BIGINT NOT NULL,
    hold_seconds     DOUBLE PRECISION NOT NULL,
    -- The latest instant a check-in brought: a slot given back is counted as freed then.
    seen_at          TEXT NOT NULL
);

-- When a slot was taken, so the queue learns how long slots are held.
ALTER TABLE leases ADD COLUMN taken_at TEXT;
