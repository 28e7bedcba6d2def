-- Curation: a keep or reject after a relabel keeps the relabelled word.
-- Every decision written by warehouse.curation.decide stores in new_word the label the image
-- carries after it; the latest standing decision's new_word is the label (older rows with no
-- new_word fall back to the collected word, as before).
CREATE OR REPLACE VIEW image_labels AS
WITH latest AS (
    SELECT image_id, decision, new_word,
           row_number() OVER (PARTITION BY image_id ORDER BY decision_id DESC) AS rn
    FROM curation_log WHERE NOT undone
)
SELECT i.image_id, i.sha256, i.path, i.origin, i.run_id,
       coalesce(l.new_word, i.word) AS word,
       i.word AS original_word,
       coalesce(l.decision, 'unreviewed') AS review
FROM images i LEFT JOIN latest l ON l.image_id = i.image_id AND l.rn = 1
WHERE i.status = 'ok';
