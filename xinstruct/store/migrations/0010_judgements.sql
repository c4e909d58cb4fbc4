-- Pairwise judgements of two models' answers by a judge model (`xinstruct eval judge`): one row per question, language
-- and order of presentation ('ab': model_a's answer shown first; 'ba': model_b's first). The prompt and the judge's raw
-- output are kept so every verdict can be re-read and re-parsed; scores are NULL when the output could not be parsed.
CREATE TABLE judgements (
    model_a VARCHAR NOT NULL,
    model_b VARCHAR NOT NULL,
    judge VARCHAR NOT NULL,            -- the judge model's name (a local folder, a version name or an endpoint's model)
    prompt_version VARCHAR NOT NULL,   -- the judge prompt's name and hash, e.g. 'pairwise-v1@1a2b3c4d'
    question_set VARCHAR NOT NULL,
    question_id VARCHAR NOT NULL,
    lang VARCHAR NOT NULL,
    position VARCHAR NOT NULL,         -- ab | ba: which model's answer the judge saw first
    answer_a_hash VARCHAR NOT NULL,    -- sha256 (16 hex) of the judged answers: a re-answered question is judged again
    answer_b_hash VARCHAR NOT NULL,
    prompt VARCHAR NOT NULL,           -- what the judge was given (chat messages as JSON, or the rendered text)
    raw VARCHAR NOT NULL,              -- the judge's output, as returned
    score_a DOUBLE,                    -- 0-10; NULL when unparseable
    score_b DOUBLE,
    parse_error VARCHAR,               -- why the output could not be parsed (NULL when it could)
    sampling JSON,                     -- temperature, max_new_tokens, backend, base URL...
    seconds DOUBLE,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (model_a, model_b, judge, prompt_version, question_set, question_id, lang, position)
);
