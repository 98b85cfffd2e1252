BEGIN;
-- R-1: drop what the migration created (LIFO). `sluice rollback` runs this only after a verify
-- check failed, and then proves the schema equals the pre-migration snapshot.
DROP TABLE IF EXISTS public.change_note;
COMMIT;
