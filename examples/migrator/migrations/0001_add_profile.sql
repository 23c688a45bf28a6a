-- migrate:up
ALTER TABLE users ADD COLUMN IF NOT EXISTS bio text NOT NULL DEFAULT '';

-- migrate:down
ALTER TABLE users DROP COLUMN IF EXISTS bio;
