-- Enrolment that cannot be hijacked (issue 15). A device can be revoked: its token ends at once
-- (token_hash is replaced by a value no token hashes to) and only then may its serial be
-- enrolled again. An enrolment key expires and has a bounded number of uses; keys issued before
-- this migration have neither (NULL) until the operator issues a new one.
ALTER TABLE devices ADD COLUMN revoked_at TEXT;
ALTER TABLE institutions ADD COLUMN enrollment_key_expires_at TEXT;
ALTER TABLE institutions ADD COLUMN enrollment_key_uses_left INTEGER;
