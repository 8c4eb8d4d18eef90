-- depends: 0001_core_tables
CREATE TABLE file_assets (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    filename          VARCHAR(255) NOT NULL,
    original_filename VARCHAR(255) NOT NULL,
    file_type         VARCHAR(50) NOT NULL,
    file_size         BIGINT NOT NULL CHECK (file_size >= 0),
    mime_type         VARCHAR(100),
    storage_backend   VARCHAR(20) NOT NULL,
    storage_path      TEXT NOT NULL,
    owner_id          UUID REFERENCES users(id),
    access_level      VARCHAR(20) DEFAULT 'private',
    metadata          JSONB,
    created_at        TIMESTAMPTZ DEFAULT NOW(),
    updated_at        TIMESTAMPTZ DEFAULT NOW(),
    deleted_at        TIMESTAMPTZ NULL,
    CONSTRAINT storage_backends CHECK (storage_backend IN ('vault', 'minio', 'filesystem')),
    CONSTRAINT access_levels CHECK (access_level IN ('private', 'shared', 'public'))
);
CREATE INDEX idx_file_assets_owner ON file_assets (owner_id) WHERE deleted_at IS NULL;

CREATE TABLE file_permissions (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    file_id         UUID REFERENCES file_assets(id) ON DELETE CASCADE,
    user_id         UUID REFERENCES users(id) ON DELETE CASCADE,
    permission_type VARCHAR(20) NOT NULL,
    granted_by      UUID REFERENCES users(id),
    granted_at      TIMESTAMPTZ DEFAULT NOW(),
    expires_at      TIMESTAMPTZ NULL,
    CONSTRAINT permission_types CHECK (permission_type IN ('read', 'write', 'delete')),
    CONSTRAINT uq_file_permission UNIQUE (file_id, user_id, permission_type)
);
