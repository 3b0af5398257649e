-- Stage 3 (ledger and API): the tables no reporting login reads: API key and web session hashes,
-- subscribers' HMAC secrets and their deliveries, the audit log. A read-only login for Grafana is granted
-- every table of the schema (also those created later); this takes these back from it.
CREATE FUNCTION revoke_secrets_from(role_name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format(
        'REVOKE ALL ON api_key, web_session, epcis_subscription, epcis_delivery, audit_log FROM %I',
        role_name
    );
END
$$;

-- The compose database makes grafana_reader before the first migration (deploy/db/10-grafana-reader.sh).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'grafana_reader') THEN
        PERFORM revoke_secrets_from('grafana_reader');
    END IF;
END
$$;
