-- "The results that count now", defined once. Only finished runs count (a killed run's partial rows
-- never do); for outlier scores the newest finished run that judged an (image, detector) pair counts,
-- so a re-run on a few words does not hide the other words' flags.
CREATE VIEW current_outlier_scores AS
SELECT s.image_id, s.detector, s.score, s.flagged, s.run_id
FROM outlier_scores s JOIN runs r ON r.run_id = s.run_id AND r.status = 'ok'
QUALIFY row_number() OVER (PARTITION BY s.image_id, s.detector ORDER BY s.run_id DESC) = 1;

-- An image is flagged when any detector of its current scores flags it (the rule every page states).
CREATE VIEW flagged_images AS
SELECT image_id, list(detector ORDER BY detector) AS detectors, max(run_id) AS run_id
FROM current_outlier_scores WHERE flagged GROUP BY image_id;

-- Duplicate groups: every group of the newest finished run that wrote any.
CREATE VIEW current_duplicate_groups AS
SELECT d.* FROM duplicate_groups d
WHERE d.run_id = (SELECT max(g.run_id) FROM duplicate_groups g JOIN runs r ON r.run_id = g.run_id AND r.status = 'ok');
