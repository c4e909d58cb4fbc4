CREATE TABLE embeddings (candidate_id VARCHAR NOT NULL, model VARCHAR NOT NULL, instruction_hash VARCHAR NOT NULL,
    vector FLOAT[] NOT NULL, PRIMARY KEY (candidate_id, model));
