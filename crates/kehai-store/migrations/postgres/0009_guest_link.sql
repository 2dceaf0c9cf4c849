-- A space may take guests only through its guest link: the SHA-256 of the link's secret (NULL:
-- the open /s/{slug}/guest page, when the space takes guests at all). An admin rotates it.
ALTER TABLE spaces ADD COLUMN guest_link_hash TEXT;
