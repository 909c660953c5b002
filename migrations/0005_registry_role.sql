-- Least privilege for sandbox pools: a pool needs the registry and nothing else, so it connects
-- as a role in the drover_registry group, which may only execute the registry functions (they
-- run as their owner). Such a role cannot read a single event. Roles are cluster-wide; this
-- creates the group once.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'drover_registry') THEN
        CREATE ROLE drover_registry NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    -- Another database's migration created it at the same moment (roles are cluster-wide).
    NULL;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA drover FROM drover_registry;
GRANT USAGE ON SCHEMA drover TO drover_registry;

ALTER FUNCTION drover.register_pool(text, text, integer) SECURITY DEFINER SET search_path = pg_catalog, drover;
ALTER FUNCTION drover.pool_heartbeat(text, integer, integer, integer) SECURITY DEFINER SET search_path = pg_catalog, drover;
ALTER FUNCTION drover.pool_stopped(text) SECURITY DEFINER SET search_path = pg_catalog, drover;
ALTER FUNCTION drover.record_sandbox(text, text, text) SECURITY DEFINER SET search_path = pg_catalog, drover;
ALTER FUNCTION drover.sandbox_ended(text) SECURITY DEFINER SET search_path = pg_catalog, drover;

REVOKE EXECUTE ON FUNCTION drover.register_pool(text, text, integer), drover.pool_heartbeat(text, integer, integer, integer),
    drover.pool_stopped(text), drover.record_sandbox(text, text, text), drover.sandbox_ended(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION drover.register_pool(text, text, integer), drover.pool_heartbeat(text, integer, integer, integer),
    drover.pool_stopped(text), drover.record_sandbox(text, text, text), drover.sandbox_ended(text) TO drover_registry;
