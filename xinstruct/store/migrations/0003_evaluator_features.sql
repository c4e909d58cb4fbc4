ALTER TABLE candidates ADD COLUMN p_good DOUBLE;  -- evaluator feature: P("good") from label-word probabilities
ALTER TABLE candidates ADD COLUMN ll_text DOUBLE; -- evaluator feature: mean log P(text | instruction) per token
ALTER TABLE candidate_versions ADD COLUMN p_good DOUBLE;
ALTER TABLE candidate_versions ADD COLUMN gain DOUBLE;   -- evaluator feature: likelihood gain of the text
