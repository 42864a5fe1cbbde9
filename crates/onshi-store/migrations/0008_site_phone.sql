-- A site's phone number (the institution import's `phone` column): the operator calls sites
-- that still need a restart at 08:00. Free text as the operator's list gives it; may be absent.
ALTER TABLE institutions ADD COLUMN phone TEXT;
