-- How many words each evaluation ranked over: a zero-shot model is scored both on the supervised
-- models' words (scope 'val') and on every word it covers (scopes 'open' and 'all').
ALTER TABLE evaluations ADD COLUMN n_words INTEGER;
