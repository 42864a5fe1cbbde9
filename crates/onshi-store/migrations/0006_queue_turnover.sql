-- The rest of what the PostgreSQL replicas' shared queue (0003_slot_queue) keeps of
-- onshi_core::appointment: how many slots have been freed (the first replaces the assumed hold,
-- and the hold counts as measured once as many were freed as there are slots) and when the
-- window's first refused device asked. next_ticket stays the next arrival's ticket.
ALTER TABLE slot_turnover ADD COLUMN frees INTEGER NOT NULL DEFAULT 0;
ALTER TABLE slot_turnover ADD COLUMN first_ask_at TEXT;
