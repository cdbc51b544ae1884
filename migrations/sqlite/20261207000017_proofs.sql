-- Proofs (issue 23, docs/protocol.md): for each step of a notice's journey
-- (the notice, its acknowledgement, each reply), where the signature that
-- covers it is. What was signed is not stored again: it is rebuilt from the
-- notice and reply rows, so a row changed by hand no longer verifies.

-- Each signed batch this node keeps a step of, once: who signed it, its
-- size and signature, the signer's certificate, and for a batch this node
-- signed itself the hashes of its leaves (32 bytes each), from which any
-- item's path is rebuilt.
CREATE TABLE signed_batches (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    signer    TEXT    NOT NULL,
    size      INTEGER NOT NULL,
    signature BLOB    NOT NULL,
    cert      TEXT    NOT NULL,  -- the certificate's fingerprint
    leaves    BLOB               -- own batches only
);

-- Per step, on the row it proves: the batch id (8 bytes), the item's index
-- (8 bytes) and, for a batch signed by another node, its path (32 bytes a
-- level), big-endian.
ALTER TABLE notices ADD COLUMN notice_proof BLOB;
ALTER TABLE notices ADD COLUMN ack_proof BLOB;
ALTER TABLE replies ADD COLUMN proof BLOB;

-- The certificates of the signers of kept proofs, by fingerprint, so a
-- proof can be checked (and handed over as evidence) after the signer's
-- certificate was renewed.
CREATE TABLE certificates (
    fingerprint TEXT PRIMARY KEY,  -- SHA-256 of the DER, hex
    district    TEXT NOT NULL,
    der         BLOB NOT NULL
);

-- A reply this node wrote that its peer kept but that changed nothing: a
-- withdrawal that reached a notice already answered (docs/protocol.md §6).
ALTER TABLE replies ADD COLUMN late INTEGER NOT NULL DEFAULT 0;
