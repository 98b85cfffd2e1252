BEGIN;

-- dot-iu-cutter v0.2 — Phase α rollback, revision r2 (sluice reference reconstruction).
--
-- LIFO reversal of phase-alpha-r2.sql, one transaction. Run only after a post-commit
-- verification check fails, through `sluice rollback` (which demands the failed check's id).
-- DROP COLUMN removes the column together with its DEFAULT; no separate SET DEFAULT reversal.
-- What this cannot restore: the updated_at values bumped by trg_tac_birth_gate_lu during the
-- Step3 backfill. Those come back only from the pre-migration backup (or the probe's pre capture).

-- R-1 (undoes Step8 h + Step9 i): the alias table and its four indexes; empty in Phase α, no row loss
DROP TABLE IF EXISTS cutter_governance.canonical_address_alias;

-- R-2 (undoes Step6 e + Step7 f): sandbox authority; 76 NULLs, no real loss
ALTER TABLE sandbox_tac.logical_unit DROP COLUMN IF EXISTS authority;

-- R-3 (undoes Step5 g): sandbox format version; DEFAULT-derived, reproducible
ALTER TABLE sandbox_tac.logical_unit DROP COLUMN IF EXISTS canonical_address_format_version;

-- R-4 (undoes Step2 a + Step3 b + Step4 c): public authority; 86 backfilled values, reproducible from BR-4
ALTER TABLE public.tac_logical_unit DROP COLUMN IF EXISTS authority;

-- R-5 (undoes Step1 d): public format version; DEFAULT-derived, reproducible
ALTER TABLE public.tac_logical_unit DROP COLUMN IF EXISTS canonical_address_format_version;

COMMIT;
