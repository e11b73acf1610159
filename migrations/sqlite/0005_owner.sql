-- Who manages an object within its origin (for origin "kubernetes": the custom resource's UID),
-- so the operator never takes over objects created elsewhere.
ALTER TABLE resources ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE policies ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE identity_groups ADD COLUMN owner TEXT NOT NULL DEFAULT '';
