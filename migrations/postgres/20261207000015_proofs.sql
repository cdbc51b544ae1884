-- Proofs (issue 23, docs/protocol.md): for each step of a notice's journey
-- (the notice, its acknowledgement, each reply), the signature that covers
-- it, as this node made or received it. What was signed is not stored
-- again: it is rebuilt from the notice and reply rows, so a row changed by
-- hand no longer verifies.
CREATE TABLE proofs (
    step_id   TEXT PRIMARY KEY,  -- '<notice id>:notice', '<notice id>:ack' or '<notice id>:<reply id>'
    notice_id TEXT NOT NULL,
    proof     TEXT NOT NULL      -- JSON: signer, index, size, path, signature, cert (fingerprint)
);

CREATE INDEX proofs_notice ON proofs (notice_id);

-- The certificates of the signers of stored proofs, by fingerprint, so a
-- proof can be checked (and handed over as evidence) after the signer's
-- certificate was renewed.
CREATE TABLE certificates (
    fingerprint TEXT PRIMARY KEY,  -- SHA-256 of the DER, hex
    district    TEXT NOT NULL,
    der         BYTEA NOT NULL
);

-- A reply this node wrote that its peer kept but that changed nothing: a
-- withdrawal that reached a notice already answered (docs/protocol.md §6).
ALTER TABLE replies ADD COLUMN late BIGINT NOT NULL DEFAULT 0;
