-- Enrolment keys issued before migration 0004 had neither an expiry nor a use count (NULL), and
-- the store took NULL as "no limit": such a key, once leaked, enrolled terminals for ever (issue
-- 15). They now expire a week after this migration ran (the life of a key issued today, the
-- server's DEFAULT_KEY_HOURS) and have one use left (a new key's default); from here on the
-- store refuses a key with either missing.
UPDATE institutions
   SET enrollment_key_expires_at = COALESCE(enrollment_key_expires_at,
                                            strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+7 days')),
       enrollment_key_uses_left = COALESCE(enrollment_key_uses_left, 1)
 WHERE enrollment_key_hash IS NOT NULL
   AND (enrollment_key_expires_at IS NULL OR enrollment_key_uses_left IS NULL);

-- A notice mail that can never be sent (the relay refused it for good, 55x, or every one of
-- notices::MAX_ATTEMPTS attempts failed) is given up instead of retried hourly for ever:
-- gave_up_at says when, last_error why; no claim takes it again, and the operator's notices
-- summary counts it.
ALTER TABLE outbox ADD COLUMN gave_up_at TEXT;
ALTER TABLE operator_outbox ADD COLUMN gave_up_at TEXT;
