-- Database webhook that wakes opsd when a run is queued.
--
-- The equivalent of a Supabase Dashboard "Database Webhook" (Integrations >
-- Webhooks): table public.runs, event INSERT, type HTTP Request, method POST,
-- URL <opsd_url>/v1/wake, headers Content-Type: application/json and
-- Authorization: Bearer <webhook_secret>. Like the Dashboard's, it is a plain
-- trigger calling supabase_functions.http_request, which queues the request
-- with pg_net: the INSERT never waits on opsd, and a failed delivery never fails
-- the INSERT. Deliveries are logged in net._http_response.
--
-- opsd receives the Supabase webhook body:
--   {"type": "INSERT", "table": "runs", "schema": "public",
--    "record": {...the new runs row...}, "old_record": null}
-- and claims queued runs from the database, so a lost or repeated wake is
-- harmless; opsd's periodic poll picks up anything a wake missed.
--
-- Apply with psql (not the Dashboard SQL editor, which has no psql variables):
--
--   psql "$DATABASE_URL" \
--     -v opsd_url=https://opsd.example.com \
--     -v webhook_secret="$OPSD_WEBHOOK_SECRET" \
--     -f deploy/supabase/database-webhook.sql
--
-- Run it again to change the URL or rotate the secret. Requirements: Postgres 14
-- or later (Supabase has it) and Database Webhooks enabled once in the Dashboard,
-- which creates supabase_functions and pg_net.
--
-- The secret ends up in the trigger's arguments, as it does for a webhook made in
-- the Dashboard; those are readable by database roles that can query pg_trigger
-- (not through PostgREST). To keep it in Supabase Vault instead, use the pg_net
-- variant at the end of this file.

\set ON_ERROR_STOP on

\if :{?opsd_url}
\else
  \warn 'database-webhook.sql: pass -v opsd_url=https://<opsd host>'
  select 1 / 0 as opsd_url_is_required;
\endif
\if :{?webhook_secret}
\else
  \warn 'database-webhook.sql: pass -v webhook_secret=<OPSD_WEBHOOK_SECRET>'
  select 1 / 0 as webhook_secret_is_required;
\endif

begin;

-- Transaction-local settings carry the values into the DO block, where
-- format(%L) quotes them: a quote in the URL or secret cannot break the SQL,
-- and jsonb_build_object escapes the header JSON. \gset keeps psql from
-- printing the secret.
select set_config('opsd.wake_url', rtrim(:'opsd_url', '/') || '/v1/wake', true) as wake_url,
       set_config('opsd.webhook_secret', :'webhook_secret', true) is not null as secret_set
\gset opsd_

do $$
declare
  wake_url text := current_setting('opsd.wake_url');
  secret   text := current_setting('opsd.webhook_secret');
begin
  if wake_url !~ '^https?://[^/?#]+' then
    raise exception 'opsd_url must be an http(s) URL, got %', wake_url;
  end if;
  if length(secret) < 16 then
    raise exception 'webhook_secret must be at least 16 characters (openssl rand -hex 32)';
  end if;
  if to_regprocedure('supabase_functions.http_request()') is null then
    raise exception 'supabase_functions.http_request() is missing: enable Database Webhooks in the Supabase Dashboard first';
  end if;

  -- Runs are always inserted as queued; the WHEN clause keeps a future
  -- non-queued insert (an import, a test fixture) from waking opsd.
  execute format(
    'create or replace trigger opsd_wake
       after insert on public.runs
       for each row
       when (new.status = %L)
       execute function supabase_functions.http_request(%L, %L, %L, %L, %L)',
    'queued',
    wake_url,
    'POST',
    jsonb_build_object(
      'Content-Type', 'application/json',
      'Authorization', 'Bearer ' || secret
    )::text,
    '{}',    -- query parameters
    '5000'   -- timeout in milliseconds
  );
end
$$;

comment on trigger opsd_wake on public.runs is
  'Wakes opsd (POST /v1/wake) when a run is queued. Managed by deploy/supabase/database-webhook.sql.';

commit;

-- ---------------------------------------------------------------------------
-- Alternative: pg_net directly, with the secret kept in Supabase Vault.
-- The body is the same {type, table, schema, record, old_record} as above.
-- Drop the trigger above first (drop trigger if exists opsd_wake on public.runs;).
--
-- select vault.create_secret('<OPSD_WEBHOOK_SECRET>', 'opsd_webhook_secret',
--                            'Bearer token for opsd /v1/wake');
--
-- create schema if not exists private;
--
-- create or replace function private.opsd_wake()
-- returns trigger
-- language plpgsql
-- security definer
-- set search_path = ''
-- as $fn$
-- begin
--   perform net.http_post(
--     url     := 'https://opsd.example.com/v1/wake',
--     body    := jsonb_build_object(
--                  'type', tg_op, 'table', tg_table_name, 'schema', tg_table_schema,
--                  'record', to_jsonb(new), 'old_record', null),
--     params  := '{}'::jsonb,
--     headers := jsonb_build_object(
--                  'Content-Type', 'application/json',
--                  'Authorization', 'Bearer ' || (
--                    select decrypted_secret from vault.decrypted_secrets
--                    where name = 'opsd_webhook_secret')),
--     timeout_milliseconds := 5000);
--   return new;
-- end
-- $fn$;
--
-- revoke all on function private.opsd_wake() from public, anon, authenticated;
--
-- create or replace trigger opsd_wake
--   after insert on public.runs
--   for each row
--   when (new.status = 'queued')
--   execute function private.opsd_wake();
