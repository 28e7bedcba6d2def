-- Features, PCA projections, outlier scores and duplicate groups.
CREATE TABLE features (
    image_id  BIGINT NOT NULL,
    backbone  VARCHAR NOT NULL,
    run_id    BIGINT NOT NULL,
    vec       FLOAT[] NOT NULL,           -- penultimate layer (FC7-style)
    logits    FLOAT[],                    -- ImageNet-1k logits when the backbone has a 1000-class head
    PRIMARY KEY (image_id, backbone)
);

CREATE TABLE pca_fits (
    run_id      BIGINT PRIMARY KEY,       -- the features run it was fitted in
    backbone    VARCHAR NOT NULL,
    n_components INTEGER NOT NULL,
    explained_variance DOUBLE,            -- sum of explained variance ratios
    artifact    VARCHAR                   -- path (relative to the data dir) of the saved mean/components
);

CREATE TABLE projections (
    image_id  BIGINT NOT NULL,
    run_id    BIGINT NOT NULL,            -- the PCA fit (pca_fits.run_id)
    vec       FLOAT[] NOT NULL,           -- 128-d
    PRIMARY KEY (image_id, run_id)
);

CREATE TABLE outlier_scores (
    image_id  BIGINT NOT NULL,
    run_id    BIGINT NOT NULL,            -- the outliers run
    detector  VARCHAR NOT NULL,           -- kmeans_2sigma | ... ; higher score = more suspicious
    word      VARCHAR,                    -- the label the detector judged against
    score     DOUBLE NOT NULL,
    flagged   BOOLEAN NOT NULL,
    PRIMARY KEY (image_id, run_id, detector)
);

CREATE TABLE duplicate_groups (
    run_id    BIGINT NOT NULL,
    group_id  INTEGER NOT NULL,
    image_id  BIGINT NOT NULL,
    kind      VARCHAR NOT NULL,           -- exact | near
    distance  DOUBLE,
    PRIMARY KEY (run_id, group_id, image_id)
);

CREATE TABLE feature_failures (           -- images a features run could not read; skipped on re-runs
    image_id  BIGINT NOT NULL,
    backbone  VARCHAR NOT NULL,
    run_id    BIGINT NOT NULL,
    error     VARCHAR NOT NULL,
    PRIMARY KEY (image_id, backbone)
);

CREATE TABLE image_hashes (               -- perceptual hashes, computed once per stored image
    image_id  BIGINT PRIMARY KEY,
    phash     VARCHAR NOT NULL,           -- imagehash.phash, 64 bits as 16 hex digits
    run_id    BIGINT NOT NULL
);
