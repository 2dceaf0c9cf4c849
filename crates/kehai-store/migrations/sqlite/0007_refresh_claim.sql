-- Who is refreshing a connection's tokens, and until when: one refresh at a time per
-- connection across instances (each refresh rotates the refresh token). It was a row of the
-- claims table (`refresh/<id>`); on the connection's own row, storing the new tokens lets go
-- of it in the same write — one statement less for each of the tens of renewals a second that
-- 100,000 connections make.
ALTER TABLE ms_connections ADD COLUMN refreshing_by TEXT;
ALTER TABLE ms_connections ADD COLUMN refreshing_until INTEGER;
DELETE FROM claims WHERE name LIKE 'refresh/%';
