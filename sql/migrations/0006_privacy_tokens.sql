-- depends: 0003_honey_combs
-- Token vault for the `tokenize` action: a token is a keyed hash of (entity type, value), so the
-- same value always gets the same token (joins still work); the value itself is kept encrypted
-- (Fernet, key in Vault) and only `detokenize` reveals it, which is audited.
CREATE TABLE privacy_tokens (
    token        VARCHAR(64) PRIMARY KEY,
    entity_type  VARCHAR(64) NOT NULL,
    ciphertext   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE TABLE privacy_token_audit (
    id          BIGSERIAL PRIMARY KEY,
    token       VARCHAR(64) NOT NULL,
    actor       VARCHAR(255) NOT NULL,
    reason      TEXT NOT NULL,
    found       BOOLEAN NOT NULL,
    at          TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX idx_privacy_token_audit_token ON privacy_token_audit (token, at DESC);
