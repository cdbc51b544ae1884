-- Staff accounts of the web console: a name, a role, an argon2id hash of the
-- password (never the password itself), and the failed logins that lock it
-- for a while.
CREATE TABLE users (
    name           TEXT    PRIMARY KEY,
    role           TEXT    NOT NULL,
    password_hash  TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL,
    failed_logins  BIGINT  NOT NULL DEFAULT 0,
    locked_until   BIGINT
);

-- Console sessions: only the SHA-256 of the cookie's value is stored, with
-- the form token (CSRF) of the session and when it was made and last used.
CREATE TABLE sessions (
    token_hash  TEXT    PRIMARY KEY,
    user_name   TEXT    NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    csrf        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    seen_at     BIGINT  NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_name);
