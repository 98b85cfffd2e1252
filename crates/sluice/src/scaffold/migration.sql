BEGIN;

-- sluice runs this file in ONE transaction that it owns: the BEGIN above and the COMMIT below
-- are set aside, SET LOCAL lock_timeout/statement_timeout come first, and the row of the last
-- statement is compared with [migration.expect] BEFORE COMMIT. Any other transaction control,
-- psql meta-command (\set, \i, …) or CONCURRENTLY is a lint error in this mode.

-- Step1: a new table (nothing else is locked: no hazard).
CREATE TABLE public.change_note (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    body       text NOT NULL
);

-- Step2: an index on the table created above (no other table is blocked while it builds).
CREATE INDEX ix_change_note_created_at ON public.change_note (created_at);

-- The trailing SELECT: one row that [migration.expect] checks before COMMIT.
SELECT count(*) AS change_note_rows,
       (to_regclass('public.ix_change_note_created_at') IS NOT NULL)::int AS index_present
  FROM public.change_note;

COMMIT;
