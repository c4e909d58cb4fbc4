CREATE TABLE documents (
    id VARCHAR PRIMARY KEY,            -- hash of raw text + url: re-ingesting a file adds nothing
    content_hash VARCHAR NOT NULL,     -- hash of normalised text: exact duplicates share it
    text VARCHAR NOT NULL,
    lang_declared VARCHAR,
    lang_detected VARCHAR,
    lang_confidence DOUBLE,
    lang VARCHAR,                      -- the language we use (declared, corrected by a reviewer)
    url VARCHAR,
    source VARCHAR,                    -- file name or dataset it came from
    source_line INTEGER,
    timestamp VARCHAR,
    status VARCHAR NOT NULL,           -- kept | dropped
    drop_reason VARCHAR,               -- too_short, too_long, language, boilerplate, exact_duplicate, near_duplicate
    drop_detail VARCHAR,
    lang_mismatch BOOLEAN NOT NULL DEFAULT false,
    minhash BLOB,
    meta JSON,
    ingested_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE INDEX documents_content_hash ON documents(content_hash);
CREATE TABLE doc_bands (band_key UBIGINT NOT NULL, doc_id VARCHAR NOT NULL);
CREATE TABLE rounds (
    id INTEGER PRIMARY KEY,
    started_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    finished_at TIMESTAMP,
    generator VARCHAR,
    evaluator VARCHAR,
    notes VARCHAR
);
CREATE TABLE model_versions (
    name VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL,             -- generator | evaluator | calibration
    base VARCHAR,
    path VARCHAR,
    data_hash VARCHAR,
    steps INTEGER,
    final_loss DOUBLE,
    metrics JSON,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE candidates (
    id VARCHAR PRIMARY KEY,
    doc_id VARCHAR NOT NULL,
    lang VARCHAR NOT NULL,
    round_id INTEGER NOT NULL DEFAULT 1,
    instruction VARCHAR,               -- current instruction (latest version)
    response VARCHAR NOT NULL,         -- the native text, never translated
    version INTEGER NOT NULL DEFAULT 1,
    gen_status VARCHAR NOT NULL,       -- ok | rejected
    gen_reason VARCHAR,
    model_version VARCHAR,
    prompt_version VARCHAR,
    sampling JSON,
    label VARCHAR,                     -- good | flawed | bad (evaluator)
    score DOUBLE,                      -- P(good), calibrated when a calibration exists
    raw_score DOUBLE,
    label_reason VARCHAR,
    refine_rounds INTEGER NOT NULL DEFAULT 0,
    cluster INTEGER,
    cluster_label VARCHAR,
    cluster_distance DOUBLE,
    selected BOOLEAN NOT NULL DEFAULT false,
    reviews_needed INTEGER NOT NULL DEFAULT 1,
    review_status VARCHAR NOT NULL DEFAULT 'pending',  -- derived from the decision log
    final_instruction VARCHAR,
    final_response VARCHAR,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE INDEX candidates_doc ON candidates(doc_id);
CREATE TABLE candidate_versions (
    candidate_id VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    stage VARCHAR NOT NULL,            -- generate | label | refine | human
    instruction VARCHAR,
    label VARCHAR,
    score DOUBLE,
    reason VARCHAR,
    round_id INTEGER,
    model_version VARCHAR,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE SEQUENCE decisions_seq;
CREATE TABLE decisions (
    id BIGINT PRIMARY KEY DEFAULT nextval('decisions_seq'),
    request_id VARCHAR UNIQUE,         -- idempotency key: a retried write is recorded once
    candidate_id VARCHAR NOT NULL,
    reviewer VARCHAR NOT NULL,
    action VARCHAR NOT NULL,           -- accept | edit | reject | skip | undo | bulk_accept | send_to_review | adjudicate
    before JSON,
    after JSON,
    reason VARCHAR,
    note VARCHAR,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE INDEX decisions_candidate ON decisions(candidate_id);
CREATE TABLE leases (
    candidate_id VARCHAR NOT NULL,
    reviewer VARCHAR NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    PRIMARY KEY (candidate_id, reviewer)
);
CREATE TABLE users (
    name VARCHAR PRIMARY KEY,
    password_hash VARCHAR NOT NULL,
    role VARCHAR NOT NULL,             -- reviewer | curator | admin
    langs VARCHAR NOT NULL DEFAULT '', -- comma-separated; empty = all
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE login_attempts (name VARCHAR NOT NULL, ok BOOLEAN NOT NULL, attempted_at TIMESTAMP NOT NULL);
CREATE TABLE exports (
    id VARCHAR PRIMARY KEY,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    by_user VARCHAR,
    filter JSON,
    format VARCHAR,
    template VARCHAR,
    rows BIGINT,
    content_hash VARCHAR,
    path VARCHAR
);
CREATE TABLE settings (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE stage_batches (stage VARCHAR NOT NULL, batch_key VARCHAR NOT NULL, finished_at TIMESTAMP NOT NULL
    DEFAULT current_timestamp, stats JSON, PRIMARY KEY (stage, batch_key));
