-- SSH public keys of an identity (OpenSSH key lines, JSON list), synced to connectors.
ALTER TABLE identities ADD COLUMN ssh_keys TEXT NOT NULL DEFAULT '[]';
