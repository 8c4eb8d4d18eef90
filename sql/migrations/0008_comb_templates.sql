-- depends: 0007_comb_checkpoints
-- Comb templates are addressed by (owner, name): system templates have no owner.
CREATE UNIQUE INDEX uq_honey_comb_templates ON honey_combs
    (name, COALESCE(owner_id, '00000000-0000-0000-0000-000000000000'::uuid)) WHERE is_template;
