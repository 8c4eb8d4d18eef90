-- depends: 0015_document_chunks
-- Weekly model training: labels known by construction, the model registry and its history.

-- A window's label: what a source did in one clock hour, known by construction (a scripted
-- campaign, benign background) or by an analyst. `origin` says which.
CREATE TABLE ml_labels (
    source_ip     INET NOT NULL,
    window_start  TIMESTAMPTZ NOT NULL,
    label         VARCHAR(50) NOT NULL,
    origin        VARCHAR(100) NOT NULL,
    labelled_at   TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (source_ip, window_start)
);
CREATE INDEX idx_ml_labels_window ON ml_labels (window_start);

-- Every trained version. The artifact is s3://ai-models/models/{model_name}/{version}/model.skops
-- (a versioned bucket: object_version pins the exact bytes, sha256 checks them); card is the
-- model card (metrics, training window, data hash, code and library versions). At most one
-- version of a model is promoted: the one the event pipeline scores with.
CREATE TABLE ml_models (
    model_name      VARCHAR(100) NOT NULL,
    version         VARCHAR(100) NOT NULL,
    algorithm       VARCHAR(100) NOT NULL,
    uri             TEXT NOT NULL,
    object_version  TEXT,
    sha256          CHAR(64) NOT NULL,
    metrics         JSONB NOT NULL DEFAULT '{}'::jsonb,
    card            JSONB NOT NULL DEFAULT '{}'::jsonb,
    status          VARCHAR(20) NOT NULL DEFAULT 'candidate',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (model_name, version),
    CONSTRAINT ml_models_status CHECK (status IN ('candidate', 'promoted', 'rejected', 'retired'))
);
CREATE UNIQUE INDEX ml_models_one_promoted ON ml_models (model_name) WHERE status = 'promoted';

-- The registry's history: every gate decision, promotion and rollback, with its reason.
CREATE TABLE ml_model_events (
    id          BIGSERIAL PRIMARY KEY,
    model_name  VARCHAR(100) NOT NULL,
    version     VARCHAR(100) NOT NULL,
    action      VARCHAR(20) NOT NULL,
    reason      TEXT NOT NULL,
    details     JSONB NOT NULL DEFAULT '{}'::jsonb,
    at          TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT ml_model_events_action CHECK (action IN ('promoted', 'rejected', 'rolled_back', 'retired'))
);
CREATE INDEX idx_ml_model_events_model ON ml_model_events (model_name, id DESC);
