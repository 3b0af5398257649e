-- Stage 3 (capture): the capture queue. POST /epcis/capture stores the document's bytes in a pending job
-- (running, no error yet) and answers 202; the capture worker of the ledger stage takes pending jobs
-- (FOR UPDATE SKIP LOCKED: several workers never finish one job twice; a job whose worker stopped is
-- pending still and is taken again) and finishes each: its events appended, or its reasons recorded. A
-- finished job keeps no body.
ALTER TABLE capture_job ADD COLUMN body bytea;
ALTER TABLE capture_job ADD CONSTRAINT capture_job_body_pending CHECK (body IS NULL OR running);
CREATE INDEX capture_job_pending ON capture_job (created_at, capture_id) WHERE running;
