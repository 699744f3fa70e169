-- The upload's original file name (sanitised by the API), the top-k labels in lower case
-- joined by '|' for history search, and one feedback per job per user (the API upserts).
ALTER TABLE predictions ADD COLUMN original_name TEXT;
ALTER TABLE predictions ADD COLUMN labels TEXT;
UPDATE predictions SET labels = (
    SELECT group_concat(lower(json_extract(p.value, '$.label')), '|')
    FROM json_each(predictions.result, '$.predictions') AS p
) WHERE result IS NOT NULL AND json_valid(result);

DELETE FROM feedback WHERE job_id IS NOT NULL AND id NOT IN (
    SELECT MAX(id) FROM feedback WHERE job_id IS NOT NULL GROUP BY user_id, job_id
);
CREATE UNIQUE INDEX feedback_user_job ON feedback (user_id, job_id);
