-- Review state that lived in the untyped `settings` table (keys 'k.<lang>', 'review.seq.<lang>',
-- 'draft.<reviewer>.<candidate>', 'guidelines') gets tables of its own with typed columns; the rows move over, so a
-- database of an older release upgrades with nothing lost. Rows the old code could not read either (a k that is not a
-- number, a draft that is not a JSON object) stay in `settings`, untouched.

-- Per-language review settings, editable by curators (app: Reviewers page; CLI: `xinstruct review settings`).
-- A language without a row uses the defaults.
CREATE TABLE review_settings (
    lang VARCHAR PRIMARY KEY,
    reviews_needed INTEGER NOT NULL DEFAULT 1,   -- k: completed reviews that must agree before an item is final
    lease_seconds INTEGER NOT NULL DEFAULT 600,  -- how long a claimed item stays reserved for its reviewer
    updated_by VARCHAR,
    updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    CHECK (reviews_needed >= 1),
    CHECK (lease_seconds >= 1)
);

-- One row per language, changed by every transaction that reads review state and then writes it (claims, decisions,
-- relabels, settings): two such transactions of one language always conflict, so DuckDB's optimistic concurrency
-- retries one of them instead of letting both act on the same snapshot (see xinstruct/review/locks.py).
CREATE TABLE review_counters (
    lang VARCHAR PRIMARY KEY,
    seq BIGINT NOT NULL DEFAULT 0
);

-- A reviewer's unsaved edit of one item, restored when the item is shown again (after a reload or a lost connection).
CREATE TABLE drafts (
    reviewer VARCHAR NOT NULL,
    candidate_id VARCHAR NOT NULL,
    instruction VARCHAR,
    response VARCHAR,
    saved_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (reviewer, candidate_id)
);

-- The review guidelines (markdown), one row per saved version; the latest is in force, the others are the history.
CREATE SEQUENCE guidelines_seq;
CREATE TABLE guidelines (
    id BIGINT PRIMARY KEY DEFAULT nextval('guidelines_seq'),
    text VARCHAR NOT NULL,
    saved_by VARCHAR,
    saved_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- Move the old rows. k: as the old reader took it (an integer, at least 1).
INSERT INTO review_settings (lang, reviews_needed)
SELECT substr(key, 3), greatest(1, TRY_CAST(value AS BIGINT))
FROM settings WHERE starts_with(key, 'k.') AND length(key) > 2 AND TRY_CAST(value AS BIGINT) IS NOT NULL;
DELETE FROM settings WHERE starts_with(key, 'k.') AND length(key) > 2 AND TRY_CAST(value AS BIGINT) IS NOT NULL;

INSERT INTO review_counters (lang, seq)
SELECT substr(key, 12), coalesce(TRY_CAST(value AS BIGINT), 0)
FROM settings WHERE starts_with(key, 'review.seq.') AND length(key) > 11;
DELETE FROM settings WHERE starts_with(key, 'review.seq.') AND length(key) > 11;

-- Drafts: 'draft.<reviewer>.<candidate id>'; a reviewer name may hold dots (e-mail addresses), a candidate id does not.
INSERT INTO drafts (reviewer, candidate_id, instruction, response)
SELECT regexp_extract(key, '^draft\.(.+)\.([^.]+)$', 1), regexp_extract(key, '^draft\.(.+)\.([^.]+)$', 2),
       json_extract_string(value, '$.instruction'), json_extract_string(value, '$.response')
FROM settings
WHERE regexp_matches(key, '^draft\.(.+)\.([^.]+)$')
  AND (CASE WHEN json_valid(value) THEN json_type(value::JSON) = 'OBJECT' ELSE false END);
DELETE FROM settings
WHERE regexp_matches(key, '^draft\.(.+)\.([^.]+)$')
  AND (CASE WHEN json_valid(value) THEN json_type(value::JSON) = 'OBJECT' ELSE false END);

INSERT INTO guidelines (text) SELECT value FROM settings WHERE key = 'guidelines' AND value IS NOT NULL;
DELETE FROM settings WHERE key = 'guidelines' AND value IS NOT NULL;
