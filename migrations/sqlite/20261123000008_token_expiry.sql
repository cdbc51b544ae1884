-- A staff token may expire (migrex token create --expires); NULL: never.
ALTER TABLE tokens ADD COLUMN expires_at INTEGER;
