-- Login forms (issue 20): the pre-session a login form belongs to. The
-- login page stores the SHA-256 of its cookie's value with the form token
-- and the address it was shown to; a login is taken only with a form the
-- node showed, once, within 30 minutes. An address holds at most 20.
CREATE TABLE login_forms (
    token_hash  TEXT    PRIMARY KEY,
    csrf        TEXT    NOT NULL,
    address     TEXT    NOT NULL,
    created_at  INTEGER  NOT NULL
);
CREATE INDEX login_forms_created ON login_forms(created_at);
CREATE INDEX login_forms_address ON login_forms(address, created_at);
