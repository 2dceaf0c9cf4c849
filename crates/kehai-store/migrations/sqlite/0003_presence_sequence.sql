-- The presence sequence number last applied for a connection: Graph's sequenceNumber is
-- lexicographically sortable, so older and duplicate notifications can be recognized.
ALTER TABLE ms_connections ADD COLUMN last_sequence TEXT;
