-- One-time sign-in links for a site's staff, carried by the announcement mail. Only the
-- SHA-256 of the token is kept; `used_at` is set once, by the statement that signs in with it.
-- `key_generation` is the site's access-key hash when the link was made (empty without one):
-- a link made before the key was re-issued signs nobody in.
CREATE TABLE sign_in_links (
    token_hash       TEXT PRIMARY KEY,
    institution_code TEXT NOT NULL REFERENCES institutions (code),
    key_generation   TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    used_at          TEXT
);
CREATE INDEX sign_in_links_expiry ON sign_in_links (expires_at);
