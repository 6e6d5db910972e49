-- API key scopes: admin ⊃ submit ⊃ read. Existing keys keep full access.
ALTER TABLE api_keys ADD COLUMN scope text NOT NULL DEFAULT 'admin' CHECK (scope IN ('admin', 'submit', 'read'));
