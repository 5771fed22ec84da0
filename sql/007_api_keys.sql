-- API keys: each names the user whose traces its holder may read, change and delete (an admin
-- key: every user's). Only a SHA-256 hash of the secret is kept; the secret itself is shown
-- once, when the key is made. The secrets are 256 random bits, so a fast hash is enough: no
-- one can guess a secret from its hash, and looking a key up by its hash costs one index probe.

CREATE TABLE tracedb_api_keys (
    id           uuid        PRIMARY KEY,
    user_id      text        NOT NULL,
    admin        boolean     NOT NULL DEFAULT false,
    label        text,
    secret_hash  text        NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE INDEX tracedb_api_keys_user_idx ON tracedb_api_keys (user_id, created_at);
