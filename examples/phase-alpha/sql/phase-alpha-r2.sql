BEGIN;

-- dot-iu-cutter v0.2 — Phase α schema, frozen revision r2 (sluice reference reconstruction).
--
-- Nine steps, one transaction. Step labels follow the seed's SQL order; the seed's
-- operation letters are: Step1=d Step2=a Step3=b Step4=c Step5=g Step6=e Step7=f
-- Step8=h Step9=i.
--
-- r2 differs from the rejected r1 in one thing that matters: `authority` is added
-- WITHOUT a default, backfilled, and only then given its default. (r1 added it with
-- DEFAULT 'draft' and then backfilled WHERE authority IS NULL, which matched no rows.)
-- The backfill fires trg_tac_birth_gate_lu, which sets updated_at := now() on every
-- row it touches: all 86 updated_at values are bumped (measured by the probe).

-- Step1 (d): format version of canonical_address, public side
ALTER TABLE public.tac_logical_unit
    ADD COLUMN canonical_address_format_version text NOT NULL DEFAULT 'canonical-address-v1';

-- Step2 (a): authority, public side — NO default yet, so Step3 can see the NULLs
ALTER TABLE public.tac_logical_unit
    ADD COLUMN authority text;

-- Step3 (b): BR-4 backfill of authority from lifecycle_status
UPDATE public.tac_logical_unit
   SET authority = CASE lifecycle_status
                       WHEN 'draft_only' THEN 'draft'
                       WHEN 'active'     THEN 'enacted'
                       WHEN 'retired'    THEN 'enacted'
                   END
 WHERE authority IS NULL;

-- Step4 (c): default for future rows only
ALTER TABLE public.tac_logical_unit
    ALTER COLUMN authority SET DEFAULT 'draft';

-- Step5 (g): format version of canonical_address, sandbox side
ALTER TABLE sandbox_tac.logical_unit
    ADD COLUMN canonical_address_format_version text NOT NULL DEFAULT 'canonical-address-v1';

-- Step6 (e): authority, sandbox side — no default
ALTER TABLE sandbox_tac.logical_unit
    ADD COLUMN authority text;

-- Step7 (f): default for future sandbox rows; NO backfill (the 76 rows stay NULL)
ALTER TABLE sandbox_tac.logical_unit
    ALTER COLUMN authority SET DEFAULT 'draft';

-- Step8 (h): the alias table — 9 columns, soft uuid reference, no FK (GPT Q2), no CHECK (GPT Q3).
-- Created EMPTY: alias writers arrive in Phase β.
CREATE TABLE cutter_governance.canonical_address_alias (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    alias_text      text        NOT NULL,
    target_unit_id  uuid        NOT NULL,   -- soft reference to public.tac_logical_unit.unit_uid
    alias_kind      text        NOT NULL,
    valid_from      timestamptz NOT NULL DEFAULT now(),
    valid_to        timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text        NOT NULL DEFAULT current_user,
    note            text
);

-- Step9 (i): four indexes on the (new, empty) alias table
CREATE INDEX ix_alias_text
    ON cutter_governance.canonical_address_alias (alias_text);
CREATE INDEX ix_alias_target_unit_id
    ON cutter_governance.canonical_address_alias (target_unit_id);
CREATE INDEX ix_alias_kind
    ON cutter_governance.canonical_address_alias (alias_kind);
CREATE INDEX ix_alias_validity_window
    ON cutter_governance.canonical_address_alias (valid_from, valid_to);

-- Trailing check, inside the transaction, before COMMIT.
-- Expected: 86 | 0 | 0 | 0 | 86 | 76 | 76 | 1
SELECT
    (SELECT count(*) FROM public.tac_logical_unit WHERE authority = 'draft')    AS tac_authority_draft,
    (SELECT count(*) FROM public.tac_logical_unit WHERE authority = 'enacted')  AS tac_authority_enacted,
    (SELECT count(*) FROM public.tac_logical_unit WHERE authority = 'runtime')  AS tac_authority_runtime,
    (SELECT count(*) FROM public.tac_logical_unit WHERE authority IS NULL)      AS tac_authority_null,
    (SELECT count(*) FROM public.tac_logical_unit
      WHERE canonical_address_format_version = 'canonical-address-v1')         AS tac_format_v1,
    (SELECT count(*) FROM sandbox_tac.logical_unit WHERE authority IS NULL)     AS sandbox_authority_null,
    (SELECT count(*) FROM sandbox_tac.logical_unit
      WHERE canonical_address_format_version = 'canonical-address-v1')         AS sandbox_format_v1,
    (to_regclass('cutter_governance.canonical_address_alias') IS NOT NULL)::int AS alias_table_present;

COMMIT;
