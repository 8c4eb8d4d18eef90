-- depends: 0008_comb_templates
-- The modification time a local file had when it was read: a file whose path, size and mtime
-- are unchanged is not read (and hashed) again.
ALTER TABLE honey_comb_files ADD COLUMN mtime DOUBLE PRECISION;
