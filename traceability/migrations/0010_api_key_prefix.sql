-- The first characters of each new key ("cck_" and 8 more), kept so that an operator can name a key
-- to revoke it (`coldchain ledger api-key revoke <key id or prefix>`). 48 of the key's 256 random bits:
-- they name it in a listing and do not help to guess the rest. Keys made before this have none.
ALTER TABLE api_key ADD COLUMN key_prefix text;
CREATE INDEX api_key_prefix ON api_key (key_prefix text_pattern_ops);
