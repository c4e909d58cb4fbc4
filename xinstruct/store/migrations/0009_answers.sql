-- Answers of instruction models to benchmark questions (`xinstruct eval answer`), kept so judging can resume and
-- every score traces to the model, prompt and sampling that produced it.
CREATE TABLE answers (
    model VARCHAR NOT NULL,            -- a model_versions name (kind 'instruct') or a base model path
    question_set VARCHAR NOT NULL,     -- the question file's name and content hash, e.g. 'vicuna80@1a2b3c4d'
    question_id VARCHAR NOT NULL,
    lang VARCHAR NOT NULL,             -- the language the answer was asked in
    question VARCHAR NOT NULL,
    prompt VARCHAR NOT NULL,           -- the full prompt given to the model (template applied)
    answer VARCHAR NOT NULL,
    finish_reason VARCHAR,             -- stop | length (truncated) | error
    sampling JSON,                     -- temperature, top_p, max_new_tokens, seed, backend
    seconds DOUBLE,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (model, question_set, question_id, lang)
);
