-- Accounts with a life cycle: an administrator may disable one (its
-- sessions end, it cannot log in until enabled) or reset its password,
-- which its holder must then change at the next login.
ALTER TABLE users ADD COLUMN disabled BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN must_change_password BIGINT NOT NULL DEFAULT 0;
