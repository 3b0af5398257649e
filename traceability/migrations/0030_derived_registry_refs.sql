-- Stage 3 (ledger): the derived tables' references to the registry, checked once per statement.
-- A custody leg names its custodian (party), location and asset, a containment row its location; as
-- foreign keys each new row was checked on its own (a lookup and a row lock per reference: some 1 300
-- for every 1 000 captured events, about a twelfth of the server's work on a capture). A statement's
-- references are now locked together (FOR KEY SHARE, the lock a foreign key takes: the registry row
-- cannot be deleted or get another key before the statement's transaction ends) and looked up by their
-- distinct values; a reference the registry does not hold refuses the statement with the foreign key's
-- error and name. On the registry's side, deleting a party, location or asset, or changing its key, is
-- refused while a derived row names it, as the foreign key's NO ACTION refused it (checked when the
-- statement ends, on what is committed then: the registry's writers run at READ COMMITTED); emptying
-- the table (TRUNCATE, which CASCADE carried on to the derived rows) while derived rows name any of it.

-- A reference the registry does not hold: the error a foreign key gives, under its name.
CREATE FUNCTION derived_ref_missing(tbl text, col text, registry text, val text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"',
        tbl, format('%s_%s_fkey', tbl, col)
        USING ERRCODE = 'foreign_key_violation', CONSTRAINT = format('%s_%s_fkey', tbl, col),
              DETAIL = format('Key (%s)=(%s) is not present in table "%s".', col, val, registry);
END;
$$;

-- Static statements (planned once per session, not at every statement as EXECUTE would).
CREATE FUNCTION custody_leg_refs_in_registry() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    col text;
    registry text;
    missing text;
BEGIN
    PERFORM 1 FROM party r WHERE r.party_id IN (SELECT n.custodian FROM new_rows n) FOR KEY SHARE OF r;
    PERFORM 1 FROM location r WHERE r.location_id IN (SELECT n.location_id FROM new_rows n)
        FOR KEY SHARE OF r;
    PERFORM 1 FROM asset r WHERE r.asset_id IN (SELECT n.asset_id FROM new_rows n) FOR KEY SHARE OF r;
    SELECT m.col, m.registry, m.v INTO col, registry, missing FROM (
        SELECT 'custodian' AS col, 'party' AS registry, d.v
        FROM (SELECT DISTINCT n.custodian AS v FROM new_rows n WHERE n.custodian IS NOT NULL) d
        WHERE NOT EXISTS (SELECT 1 FROM party r WHERE r.party_id = d.v)
        UNION ALL
        SELECT 'location_id', 'location', d.v
        FROM (SELECT DISTINCT n.location_id AS v FROM new_rows n WHERE n.location_id IS NOT NULL) d
        WHERE NOT EXISTS (SELECT 1 FROM location r WHERE r.location_id = d.v)
        UNION ALL
        SELECT 'asset_id', 'asset', d.v
        FROM (SELECT DISTINCT n.asset_id AS v FROM new_rows n WHERE n.asset_id IS NOT NULL) d
        WHERE NOT EXISTS (SELECT 1 FROM asset r WHERE r.asset_id = d.v)
    ) m LIMIT 1;
    IF missing IS NOT NULL THEN
        PERFORM derived_ref_missing(TG_TABLE_NAME, col, registry, missing);
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION containment_refs_in_registry() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing text;
BEGIN
    PERFORM 1 FROM location r WHERE r.location_id IN (SELECT n.location_id FROM new_rows n)
        FOR KEY SHARE OF r;
    SELECT d.v INTO missing
    FROM (SELECT DISTINCT n.location_id AS v FROM new_rows n WHERE n.location_id IS NOT NULL) d
    WHERE NOT EXISTS (SELECT 1 FROM location r WHERE r.location_id = d.v) LIMIT 1;
    IF missing IS NOT NULL THEN
        PERFORM derived_ref_missing(TG_TABLE_NAME, 'location_id', 'location', missing);
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION registry_keys_not_derived() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    i int := 1;
    held text;
BEGIN
    -- TG_ARGV: this registry table's key, then pairs (derived table, its column naming the key). A DELETE
    -- or an UPDATE is refused while a derived row names a key it took away (old_rows), a TRUNCATE while
    -- one names any.
    WHILE i < TG_NARGS LOOP
        IF TG_OP = 'TRUNCATE' THEN
            EXECUTE format('SELECT d.%2$I FROM %1$I d WHERE d.%2$I IS NOT NULL LIMIT 1',
                           TG_ARGV[i], TG_ARGV[i + 1]) INTO held;
        ELSE
            EXECUTE format(
                'SELECT o.%1$I FROM old_rows o WHERE NOT EXISTS (SELECT 1 FROM %2$I t WHERE t.%1$I = o.%1$I)'
                ' AND EXISTS (SELECT 1 FROM %3$I d WHERE d.%4$I = o.%1$I) LIMIT 1',
                TG_ARGV[0], TG_TABLE_NAME, TG_ARGV[i], TG_ARGV[i + 1]) INTO held;
        END IF;
        IF held IS NOT NULL THEN
            RAISE EXCEPTION '% on table "%" violates foreign key constraint "%" on table "%"',
                lower(TG_OP), TG_TABLE_NAME, format('%s_%s_fkey', TG_ARGV[i], TG_ARGV[i + 1]), TG_ARGV[i]
                USING ERRCODE = 'foreign_key_violation',
                      CONSTRAINT = format('%s_%s_fkey', TG_ARGV[i], TG_ARGV[i + 1]),
                      DETAIL = format('Key (%s)=(%s) is still referenced from table "%s".',
                                      TG_ARGV[0], held, TG_ARGV[i]);
        END IF;
        i := i + 2;
    END LOOP;
    RETURN NULL;
END;
$$;

ALTER TABLE custody_leg DROP CONSTRAINT custody_leg_custodian_fkey;
ALTER TABLE custody_leg DROP CONSTRAINT custody_leg_location_id_fkey;
ALTER TABLE custody_leg DROP CONSTRAINT custody_leg_asset_id_fkey;
ALTER TABLE containment DROP CONSTRAINT containment_location_id_fkey;

CREATE TRIGGER custody_leg_refs_insert AFTER INSERT ON custody_leg REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION custody_leg_refs_in_registry();
CREATE TRIGGER custody_leg_refs_update AFTER UPDATE ON custody_leg REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION custody_leg_refs_in_registry();
CREATE TRIGGER containment_refs_insert AFTER INSERT ON containment REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION containment_refs_in_registry();
CREATE TRIGGER containment_refs_update AFTER UPDATE ON containment REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION containment_refs_in_registry();

CREATE TRIGGER party_derived_delete AFTER DELETE ON party REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION registry_keys_not_derived('party_id', 'custody_leg', 'custodian');
CREATE TRIGGER party_derived_update AFTER UPDATE ON party REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION registry_keys_not_derived('party_id', 'custody_leg', 'custodian');
CREATE TRIGGER location_derived_delete AFTER DELETE ON location REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION registry_keys_not_derived(
        'location_id', 'custody_leg', 'location_id', 'containment', 'location_id');
CREATE TRIGGER location_derived_update AFTER UPDATE ON location REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION registry_keys_not_derived(
        'location_id', 'custody_leg', 'location_id', 'containment', 'location_id');
CREATE TRIGGER asset_derived_delete AFTER DELETE ON asset REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION registry_keys_not_derived('asset_id', 'custody_leg', 'asset_id');
CREATE TRIGGER asset_derived_update AFTER UPDATE ON asset REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION registry_keys_not_derived('asset_id', 'custody_leg', 'asset_id');
CREATE TRIGGER party_derived_truncate BEFORE TRUNCATE ON party
    FOR EACH STATEMENT EXECUTE FUNCTION registry_keys_not_derived('party_id', 'custody_leg', 'custodian');
CREATE TRIGGER location_derived_truncate BEFORE TRUNCATE ON location
    FOR EACH STATEMENT EXECUTE FUNCTION registry_keys_not_derived(
        'location_id', 'custody_leg', 'location_id', 'containment', 'location_id');
CREATE TRIGGER asset_derived_truncate BEFORE TRUNCATE ON asset
    FOR EACH STATEMENT EXECUTE FUNCTION registry_keys_not_derived('asset_id', 'custody_leg', 'asset_id');
