-- Feedback artefacts become rows: what `xinstruct feedback` derives from the review decisions (generator training pairs,
-- refinement examples, calibrations, and how far it has read the decision log) lives in the store, so training and
-- refinement read it here instead of finding JSON Lines files by glob. Files are written only on request
-- (`xinstruct feedback --out FOLDER`). Existing data is carried over: the watermark from settings, calibrations from
-- their model_versions metrics, and the pairs and examples of decisions an earlier feedback run already consumed
-- (rebuilt from the candidates' current final texts: the files those runs wrote are not read by a migration).
CREATE SEQUENCE feedback_runs_seq;
CREATE TABLE feedback_runs (
    id INTEGER PRIMARY KEY DEFAULT nextval('feedback_runs_seq'),
    round_id INTEGER,                  -- the round current when it ran
    last_decision BIGINT NOT NULL,     -- decisions up to this id are consumed (was settings 'feedback.last_decision')
    reviewed INTEGER,                  -- decided candidates the calibration saw
    calibration VARCHAR,               -- model_versions name of the calibration it fitted (kind 'calibration'), if any
    evaluator VARCHAR,                 -- model_versions name of the evaluator it retrained (kind 'evaluator'), if any
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE generator_pairs (         -- accepted and edited pairs in seed form: training data for the next generator
    feedback_run INTEGER NOT NULL,
    candidate_id VARCHAR NOT NULL,
    lang VARCHAR NOT NULL,
    instruction VARCHAR NOT NULL,      -- English, as the reviewers left it
    response VARCHAR NOT NULL,         -- the native text, as the reviewers left it
    PRIMARY KEY (feedback_run, candidate_id)
);
CREATE TABLE refinement_examples (     -- human corrections (original -> edited instruction) to show the refiner
    feedback_run INTEGER NOT NULL,
    candidate_id VARCHAR NOT NULL,
    lang VARCHAR NOT NULL,
    text VARCHAR,                      -- the document
    instruction_before VARCHAR,
    instruction_after VARCHAR,
    response_before VARCHAR,
    response_after VARCHAR,
    PRIMARY KEY (feedback_run, candidate_id)
);
CREATE TABLE calibrations (            -- one fit per language of a calibration version
    name VARCHAR NOT NULL,             -- model_versions name (kind 'calibration')
    lang VARCHAR NOT NULL,
    coef DOUBLE[],                     -- logistic regression on refine.features; NULL when too few decisions to fit
    intercept DOUBLE,
    auc DOUBLE,                        -- held-out half (split by candidate id)
    accuracy DOUBLE,
    threshold DOUBLE,
    n_train INTEGER,
    n_test INTEGER,
    note VARCHAR,
    PRIMARY KEY (name, lang)
);
INSERT INTO feedback_runs (round_id, last_decision)
    SELECT NULL, max(TRY_CAST(value AS BIGINT)) FROM settings WHERE key = 'feedback.last_decision'
    HAVING max(TRY_CAST(value AS BIGINT)) IS NOT NULL;
DELETE FROM settings WHERE key = 'feedback.last_decision';
INSERT INTO generator_pairs (feedback_run, candidate_id, lang, instruction, response)
    SELECT r.id, c.id, c.lang, coalesce(c.final_instruction, c.instruction), coalesce(c.final_response, c.response)
    FROM candidates c, (SELECT id, last_decision FROM feedback_runs) r
    WHERE c.review_status IN ('accepted', 'edited') AND coalesce(c.final_instruction, c.instruction) IS NOT NULL
      AND EXISTS (SELECT 1 FROM decisions x WHERE x.candidate_id = c.id AND x.id <= r.last_decision);
INSERT INTO refinement_examples (feedback_run, candidate_id, lang, text, instruction_before, instruction_after,
                                 response_before, response_after)
    SELECT r.id, c.id, c.lang, d.text, c.instruction, c.final_instruction, c.response, c.final_response
    FROM candidates c JOIN documents d ON d.id = c.doc_id, (SELECT id, last_decision FROM feedback_runs) r
    WHERE c.review_status = 'edited'
      AND EXISTS (SELECT 1 FROM decisions x WHERE x.candidate_id = c.id AND x.id <= r.last_decision);
INSERT INTO calibrations (name, lang, coef, intercept, auc, accuracy, threshold, n_train, n_test, note)
    SELECT name, lang,
           TRY_CAST(json_extract(fit, '$.calibration.coef') AS DOUBLE[]),
           TRY_CAST(json_extract_string(fit, '$.calibration.intercept') AS DOUBLE),
           TRY_CAST(json_extract_string(fit, '$.auc') AS DOUBLE),
           TRY_CAST(json_extract_string(fit, '$.accuracy') AS DOUBLE),
           TRY_CAST(json_extract_string(fit, '$.threshold') AS DOUBLE),
           TRY_CAST(json_extract_string(fit, '$.n_train') AS INTEGER),
           TRY_CAST(json_extract_string(fit, '$.n_test') AS INTEGER),
           json_extract_string(fit, '$.note')
    FROM (SELECT name, lang, json_extract(metrics, '$.languages.' || lang) AS fit
          FROM (SELECT name, metrics, unnest(json_keys(metrics, '$.languages')) AS lang
                FROM model_versions WHERE kind = 'calibration' AND metrics IS NOT NULL));
