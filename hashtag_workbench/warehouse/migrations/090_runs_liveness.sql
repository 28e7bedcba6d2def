-- Which process instance owns a running run: boot id + the process's start time, so a
-- later process that happens to reuse a killed job's pid is not mistaken for it.
ALTER TABLE runs ADD COLUMN proc_start VARCHAR;
