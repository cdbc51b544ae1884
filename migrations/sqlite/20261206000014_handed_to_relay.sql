-- Outbound notices a relay (中转) took for their destination: which relay
-- and when, until the destination's Delivery reply says it arrived.
ALTER TABLE notices ADD COLUMN relayed_by TEXT;
ALTER TABLE notices ADD COLUMN relayed_at INTEGER;
