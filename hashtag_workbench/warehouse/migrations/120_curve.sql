-- The data-efficiency curve: per curve run, one row per method and photos-per-word size.
CREATE TABLE curve_points (
    run_id          BIGINT NOT NULL,      -- the curve run (its config names the split and the zero-shot model)
    method          VARCHAR NOT NULL,     -- zero_shot | probe | zero_shot_plus_photos
    per_word        VARCHAR NOT NULL,     -- photos per word asked for: '0' (zero-shot), '1', '2', ..., 'all'
    photos_per_word DOUBLE NOT NULL,      -- mean photos per word actually used (words with fewer use all)
    words           INTEGER,              -- words in the split
    words_with_k    INTEGER,              -- words that had at least that many train photos
    seeds           INTEGER NOT NULL,     -- draws averaged
    top1            DOUBLE NOT NULL,      -- mean over seeds, on the split's val photos
    top5            DOUBLE NOT NULL,
    top1_std        DOUBLE,
    top5_std        DOUBLE,
    weight          DOUBLE,               -- zero_shot_plus_photos: mean zero-shot weight chosen on the train photos
    model_id        BIGINT,               -- zero_shot and zero_shot_plus_photos: the zero-shot model
    name            VARCHAR,              -- zero_shot: that model's name
    best            BOOLEAN NOT NULL DEFAULT false  -- zero_shot: the model used as the 0-photo point
);
