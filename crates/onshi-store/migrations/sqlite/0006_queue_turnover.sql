-- The rest of what the PostgreSQL replicas' shared queue (0003_slot_queue) keeps of
-- onshi_core::appointment: how many slots have been freed (the first replaces the assumed hold,
-- and the hold counts as measured once as many were freed as there are slots) and when the
-- window's first refused device asked. next_ticket stays the next arrival's ticket.
ALTER TABLE slot_turnover ADD COLUMN frees INTEGER NOT NULL DEFAULT 0;
ALTER TABLE slot_turnover ADD COLUMN first_ask_at TEXT;
-- A lapsed place (its device did not come back within the grace after its appointment) is
-- found by its appointment.
CREATE INDEX slot_queue_due ON slot_queue (campaign_id, due_at);
