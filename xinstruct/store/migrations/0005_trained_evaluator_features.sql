ALTER TABLE candidates ADD COLUMN features JSON;  -- the trained evaluator's features when it labelled the candidate
ALTER TABLE candidate_versions ADD COLUMN features JSON;
