-- from migrations/0001_add_profile.sql (first start only)
ALTER TABLE users ADD COLUMN IF NOT EXISTS bio text NOT NULL DEFAULT '';
