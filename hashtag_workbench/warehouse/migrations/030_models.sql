-- Splits, trained models, learning curves, evaluations and predictions.
CREATE TABLE splits (
    run_id    BIGINT NOT NULL,            -- the split run
    image_id  BIGINT NOT NULL,
    word      VARCHAR NOT NULL,
    part      VARCHAR NOT NULL,           -- train | val
    PRIMARY KEY (run_id, image_id)
);

CREATE TABLE models (
    model_id   BIGINT PRIMARY KEY,        -- = the run that trained it
    kind       VARCHAR NOT NULL,          -- bovw_svm | finetune | linear_probe | conse
    name       VARCHAR NOT NULL,          -- human label, e.g. "ConSE (GloVe, T=10)"
    backbone   VARCHAR,
    split_run_id BIGINT,
    config     JSON NOT NULL,             -- everything needed to rebuild it
    classes    JSON NOT NULL,             -- ordered list of words
    artifact   VARCHAR,                   -- path relative to the data dir
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE learning_curves (
    model_id   BIGINT NOT NULL,
    epoch      INTEGER NOT NULL,
    train_loss DOUBLE, val_loss DOUBLE, train_acc DOUBLE, val_acc DOUBLE,
    seconds    DOUBLE,
    PRIMARY KEY (model_id, epoch)
);

CREATE TABLE evaluations (
    run_id     BIGINT NOT NULL,           -- the evaluate run
    model_id   BIGINT NOT NULL,
    scope      VARCHAR NOT NULL,          -- val | all
    n_images   INTEGER NOT NULL,
    top1       DOUBLE NOT NULL,
    top5       DOUBLE NOT NULL,
    PRIMARY KEY (run_id, model_id, scope)
);

CREATE TABLE per_word_metrics (
    run_id BIGINT NOT NULL, model_id BIGINT NOT NULL, scope VARCHAR NOT NULL,
    word VARCHAR NOT NULL, precision DOUBLE, recall DOUBLE, support INTEGER,
    PRIMARY KEY (run_id, model_id, scope, word)
);

CREATE TABLE confusion (
    run_id BIGINT NOT NULL, model_id BIGINT NOT NULL, scope VARCHAR NOT NULL,
    true_word VARCHAR NOT NULL, pred_word VARCHAR NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (run_id, model_id, scope, true_word, pred_word)
);

CREATE TABLE eval_predictions (           -- every evaluated image: lets the dashboard show any confusion cell
    run_id BIGINT NOT NULL, model_id BIGINT NOT NULL, scope VARCHAR NOT NULL,
    image_id BIGINT NOT NULL, true_word VARCHAR NOT NULL, pred_word VARCHAR NOT NULL,
    prob DOUBLE, top5 JSON,
    PRIMARY KEY (run_id, model_id, scope, image_id)
);

CREATE TABLE predictions (                -- ad-hoc predictions (CLI predict, dashboard uploads)
    prediction_id BIGINT PRIMARY KEY DEFAULT nextval('decision_seq'),
    run_id    BIGINT,
    model_id  BIGINT NOT NULL,
    sha256    VARCHAR NOT NULL,
    top       JSON NOT NULL,              -- [[word, prob], ...]
    hashtags  JSON NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
