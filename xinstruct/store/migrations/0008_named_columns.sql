-- Column names say what they hold.
--
-- candidates.raw_score held the likelihood gain of the text under the instruction (mean log P(text | instruction) -
-- mean log P(text) per token), written by refine and read back as "gain"; candidate_versions already calls it gain.
-- DuckDB refuses to rename a column of a table that has an index, so the index is dropped and made again (all in this
-- migration's one transaction: an upgrade either completes or leaves the file as it was).
DROP INDEX candidates_doc;
ALTER TABLE candidates RENAME COLUMN raw_score TO gain;
CREATE INDEX candidates_doc ON candidates(doc_id);
-- stage_batches was written by `xinstruct run` (one summary row per stage, its two key columns swapped) and never read.
-- Resuming needs no such marker: every stage finds its remaining work in the stored data itself (document and candidate
-- ids are hashes, unlabelled candidates have no label), and a "stage done" row could only disagree with that data (a
-- stage done yesterday has new work after today's ingest). Run summaries are printed by `xinstruct run`.
DROP TABLE stage_batches;
