-- opsd tables: the Ops Control Room frontend's tables (CONTRACT.md) plus the
-- additive columns opsd needs. Written to be applied on an empty database and
-- on a Supabase project that already has the frontend's tables: every CREATE
-- is IF NOT EXISTS and every opsd column is ADD COLUMN IF NOT EXISTS with a
-- default or NULL, so nothing the frontend reads is renamed or removed.

CREATE OR REPLACE FUNCTION public.opsd_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

CREATE TABLE IF NOT EXISTS public.sessions (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  created_by uuid NULL DEFAULT auth.uid(),
  title      text NOT NULL DEFAULT 'Session',
  intent     text NOT NULL DEFAULT '',
  status     text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.run_templates (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  slug          text UNIQUE NOT NULL,
  title         text NOT NULL,
  description   text NOT NULL DEFAULT '',
  template_yaml text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.runs (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  created_by    uuid NULL DEFAULT auth.uid(),
  env           text NOT NULL CHECK (env IN ('prod', 'staging', 'dev')),
  kind          text NOT NULL CHECK (kind IN ('deploy', 'healthcheck', 'spec', 'incident', 'schema_sync')),
  plan          jsonb NULL,
  intent        text NOT NULL DEFAULT '',
  template_id   uuid NULL,
  input         jsonb NOT NULL DEFAULT '{}'::jsonb,
  status        text NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'success', 'error', 'canceled')),
  started_at    timestamptz NULL,
  finished_at   timestamptz NULL,
  error_message text NULL,
  session_id    uuid NULL REFERENCES public.sessions (id) ON DELETE SET NULL,
  lane          text NOT NULL DEFAULT 'A',
  priority      int NOT NULL DEFAULT 100,
  claimed_by    text NULL,
  claimed_at    timestamptz NULL,
  heartbeat_at  timestamptz NULL,
  canceled_at   timestamptz NULL
);

-- opsd's additive columns.
ALTER TABLE public.runs
  ADD COLUMN IF NOT EXISTS attempt         int NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS max_attempts    int NOT NULL DEFAULT 1,
  ADD COLUMN IF NOT EXISTS phase           text NULL,
  ADD COLUMN IF NOT EXISTS output          jsonb NULL,
  ADD COLUMN IF NOT EXISTS dry_run         boolean NOT NULL DEFAULT false,
  ADD COLUMN IF NOT EXISTS timeout_seconds int NULL,
  ADD COLUMN IF NOT EXISTS approved_by     text NULL,
  ADD COLUMN IF NOT EXISTS approved_at     timestamptz NULL,
  -- claim_token makes a claim idempotent: a claimer whose response was lost
  -- replays the same token and gets the same runs back.
  ADD COLUMN IF NOT EXISTS claim_token     uuid NULL;

CREATE TABLE IF NOT EXISTS public.run_events (
  id      bigserial PRIMARY KEY,
  run_id  uuid NOT NULL REFERENCES public.runs (id) ON DELETE CASCADE,
  ts      timestamptz NOT NULL DEFAULT now(),
  level   text NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error', 'success')),
  source  text NOT NULL,
  message text NOT NULL,
  data    jsonb NULL
);
ALTER TABLE public.run_events
  ADD COLUMN IF NOT EXISTS seq   int NULL,
  ADD COLUMN IF NOT EXISTS phase text NULL;

CREATE TABLE IF NOT EXISTS public.artifacts (
  id         bigserial PRIMARY KEY,
  run_id     uuid NOT NULL REFERENCES public.runs (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  kind       text NOT NULL CHECK (kind IN ('link', 'diff', 'file')),
  title      text NOT NULL,
  value      text NOT NULL
);

CREATE TABLE IF NOT EXISTS public.spec_docs (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  slug       text UNIQUE NOT NULL,
  title      text NOT NULL,
  content    text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'step_status' AND typnamespace = 'public'::regnamespace) THEN
    CREATE TYPE public.step_status AS ENUM ('queued', 'running', 'succeeded', 'failed', 'canceled');
  END IF;
END
$$;

CREATE TABLE IF NOT EXISTS public.run_steps (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  run_id      uuid NOT NULL REFERENCES public.runs (id) ON DELETE CASCADE,
  idx         int NOT NULL,
  step_id     text NOT NULL,
  title       text NOT NULL,
  kind        text NOT NULL DEFAULT 'system',
  tool        text NULL,
  action      text NULL,
  args        jsonb NOT NULL DEFAULT '{}'::jsonb,
  status      public.step_status NOT NULL DEFAULT 'queued',
  started_at  timestamptz NULL,
  finished_at timestamptz NULL,
  error       text NULL,
  UNIQUE (run_id, idx)
);

-- updated_at triggers.
DROP TRIGGER IF EXISTS sessions_touch_updated_at ON public.sessions;
CREATE TRIGGER sessions_touch_updated_at BEFORE UPDATE ON public.sessions
  FOR EACH ROW EXECUTE FUNCTION public.opsd_touch_updated_at();
DROP TRIGGER IF EXISTS runs_touch_updated_at ON public.runs;
CREATE TRIGGER runs_touch_updated_at BEFORE UPDATE ON public.runs
  FOR EACH ROW EXECUTE FUNCTION public.opsd_touch_updated_at();
DROP TRIGGER IF EXISTS spec_docs_touch_updated_at ON public.spec_docs;
CREATE TRIGGER spec_docs_touch_updated_at BEFORE UPDATE ON public.spec_docs
  FOR EACH ROW EXECUTE FUNCTION public.opsd_touch_updated_at();

-- Events: a stable per-run order (seq 1..n), and idempotent batch inserts.
CREATE UNIQUE INDEX IF NOT EXISTS run_events_run_id_seq_key ON public.run_events (run_id, seq);
CREATE INDEX IF NOT EXISTS artifacts_run_id_idx ON public.artifacts (run_id);

-- The per-lane claim reads sessionless runs, and the head run of each
-- session, of one lane in priority, created_at order.
CREATE INDEX IF NOT EXISTS runs_claim_sessionless_idx ON public.runs (lane, priority, created_at, id)
  WHERE status = 'queued' AND session_id IS NULL;
CREATE INDEX IF NOT EXISTS runs_claim_session_idx ON public.runs (lane, session_id, priority, created_at, id)
  WHERE status = 'queued' AND session_id IS NOT NULL;
-- Lane exclusivity and the stale-run scan look at the (few) in-flight runs.
-- heartbeat_at is deliberately not indexed: heartbeats and phase changes
-- then touch no indexed column and stay HOT updates (see fillfactor below).
CREATE INDEX IF NOT EXISTS runs_inflight_idx ON public.runs (session_id, lane)
  WHERE status = 'running' OR (status = 'canceled' AND finished_at IS NULL);
CREATE INDEX IF NOT EXISTS runs_claimed_by_idx ON public.runs (claimed_by)
  WHERE claimed_by IS NOT NULL AND finished_at IS NULL;
CREATE INDEX IF NOT EXISTS runs_session_lane_created_idx ON public.runs (session_id, lane, created_at DESC);
CREATE INDEX IF NOT EXISTS runs_created_at_idx ON public.runs (created_at DESC);
-- Room on each page for the in-place (HOT) updates of heartbeats and phases.
ALTER TABLE public.runs SET (fillfactor = 80);
-- The hard guarantee behind the lane rule: one running run per (session, lane).
CREATE UNIQUE INDEX IF NOT EXISTS runs_one_running_per_lane ON public.runs (session_id, lane)
  WHERE status = 'running' AND session_id IS NOT NULL;
