-- The security model of CONTRACT.md: the browser (anon, authenticated) may
-- create and update sessions, create queued runs, read what is theirs or
-- shared, cancel runs and edit spec docs; only the service role (the daemon)
-- writes events, artifacts, steps and run status. Supabase grants everything
-- in public to anon and authenticated by default privileges, so every grant
-- here starts from a REVOKE.

ALTER TABLE public.sessions      ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.runs          ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.run_events    ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.artifacts     ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.run_steps     ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.run_templates ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.spec_docs     ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON public.sessions, public.runs, public.run_events, public.artifacts, public.run_steps,
              public.run_templates, public.spec_docs FROM anon, authenticated;
GRANT ALL ON public.sessions, public.runs, public.run_events, public.artifacts, public.run_steps,
             public.run_templates, public.spec_docs TO service_role;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO service_role;

-- sessions
GRANT SELECT ON public.sessions TO anon, authenticated;
GRANT INSERT (id, title, intent, status) ON public.sessions TO anon, authenticated;
GRANT UPDATE (title, intent, status) ON public.sessions TO anon, authenticated;
DROP POLICY IF EXISTS sessions_read ON public.sessions;
CREATE POLICY sessions_read ON public.sessions FOR SELECT TO anon, authenticated
  USING (created_by IS NULL OR created_by = auth.uid());
DROP POLICY IF EXISTS sessions_create ON public.sessions;
CREATE POLICY sessions_create ON public.sessions FOR INSERT TO anon, authenticated
  WITH CHECK (created_by IS NULL OR created_by = auth.uid());
DROP POLICY IF EXISTS sessions_edit ON public.sessions;
CREATE POLICY sessions_edit ON public.sessions FOR UPDATE TO anon, authenticated
  USING (created_by IS NULL OR created_by = auth.uid())
  WITH CHECK (created_by IS NULL OR created_by = auth.uid());

-- runs: users insert queued runs (no status or claim columns are granted) and
-- may only ever set status to canceled.
GRANT SELECT ON public.runs TO anon, authenticated;
GRANT INSERT (id, env, kind, plan, intent, template_id, input, session_id, lane, priority, dry_run, timeout_seconds)
  ON public.runs TO anon, authenticated;
GRANT UPDATE (status, canceled_at) ON public.runs TO anon, authenticated;
DROP POLICY IF EXISTS runs_read ON public.runs;
CREATE POLICY runs_read ON public.runs FOR SELECT TO anon, authenticated
  USING (created_by IS NULL OR created_by = auth.uid());
DROP POLICY IF EXISTS runs_create ON public.runs;
CREATE POLICY runs_create ON public.runs FOR INSERT TO anon, authenticated
  WITH CHECK ((created_by IS NULL OR created_by = auth.uid()) AND status = 'queued' AND claimed_by IS NULL);
DROP POLICY IF EXISTS runs_cancel ON public.runs;
CREATE POLICY runs_cancel ON public.runs FOR UPDATE TO anon, authenticated
  USING ((created_by IS NULL OR created_by = auth.uid()) AND status IN ('queued', 'running'))
  WITH CHECK (status = 'canceled');

-- events, artifacts, steps: readable with their run, written by the daemon only.
GRANT SELECT ON public.run_events, public.artifacts, public.run_steps TO anon, authenticated;
DROP POLICY IF EXISTS run_events_read ON public.run_events;
CREATE POLICY run_events_read ON public.run_events FOR SELECT TO anon, authenticated
  USING (EXISTS (SELECT 1 FROM public.runs r WHERE r.id = run_id));
DROP POLICY IF EXISTS artifacts_read ON public.artifacts;
CREATE POLICY artifacts_read ON public.artifacts FOR SELECT TO anon, authenticated
  USING (EXISTS (SELECT 1 FROM public.runs r WHERE r.id = run_id));
DROP POLICY IF EXISTS run_steps_read ON public.run_steps;
CREATE POLICY run_steps_read ON public.run_steps FOR SELECT TO anon, authenticated
  USING (EXISTS (SELECT 1 FROM public.runs r WHERE r.id = run_id));

-- templates are shared and read-only; spec docs are edited by the Spec Kit editor.
GRANT SELECT ON public.run_templates TO anon, authenticated;
DROP POLICY IF EXISTS run_templates_read ON public.run_templates;
CREATE POLICY run_templates_read ON public.run_templates FOR SELECT TO anon, authenticated USING (true);
GRANT SELECT ON public.spec_docs TO anon, authenticated;
GRANT UPDATE (title, content) ON public.spec_docs TO anon, authenticated;
DROP POLICY IF EXISTS spec_docs_read ON public.spec_docs;
CREATE POLICY spec_docs_read ON public.spec_docs FOR SELECT TO anon, authenticated USING (true);
DROP POLICY IF EXISTS spec_docs_edit ON public.spec_docs;
CREATE POLICY spec_docs_edit ON public.spec_docs FOR UPDATE TO anon, authenticated USING (true) WITH CHECK (true);

-- Functions: nobody by default, then exactly who may call each.
DO $$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN
    SELECT p.oid::regprocedure FROM pg_proc p
     WHERE p.pronamespace = 'public'::regnamespace
       AND p.proname IN ('claim_run', 'claim_runs', 'heartbeat_runs', 'heartbeat_run', 'set_run_phase',
                         'finish_run', 'complete_run', 'release_run', 'reap_stale_runs', 'cancel_run',
                         'approve_run', 'enqueue_run', 'ping', 'opsd_schema_version', 'opsd_lane_counts',
                         'opsd_claimed_json', 'opsd_system_event', 'opsd_lane_busy', 'opsd_caller_is_user',
                         'opsd_runs_guard', 'opsd_runs_insert_guard', 'opsd_runs_notify', 'opsd_touch_updated_at',
                         'opsd_runs_canceled_event')
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, anon, authenticated', f);
  END LOOP;
END
$$;

GRANT EXECUTE ON FUNCTION
  public.claim_run(text, text, int, uuid), public.claim_runs(text, int),
  public.heartbeat_runs(text, uuid[], int[]), public.heartbeat_run(uuid, text),
  public.set_run_phase(uuid, text, int, text), public.finish_run(uuid, text, int, text, text, jsonb),
  public.complete_run(uuid, text, text), public.release_run(uuid, text, int, text),
  public.reap_stale_runs(int), public.opsd_schema_version(), public.opsd_lane_counts(),
  public.cancel_run(uuid), public.approve_run(uuid, text), public.enqueue_run(text, text, jsonb), public.ping()
TO service_role;
GRANT EXECUTE ON FUNCTION public.cancel_run(uuid), public.enqueue_run(text, text, jsonb), public.ping()
  TO anon, authenticated;
GRANT EXECUTE ON FUNCTION public.approve_run(uuid, text) TO authenticated;
-- Trigger and policy helpers run in the invoker's context.
GRANT EXECUTE ON FUNCTION public.opsd_runs_guard(), public.opsd_runs_insert_guard(), public.opsd_runs_notify(),
  public.opsd_touch_updated_at() TO anon, authenticated, service_role;

-- Realtime: every table the UI watches is in the supabase_realtime
-- publication. Created if missing, never dropped: other tables may be in it.
DO $$
DECLARE
  t text;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'supabase_realtime') THEN
    CREATE PUBLICATION supabase_realtime;
  END IF;
  IF (SELECT puballtables FROM pg_publication WHERE pubname = 'supabase_realtime') THEN
    RETURN;
  END IF;
  FOREACH t IN ARRAY ARRAY['sessions', 'runs', 'run_events', 'artifacts', 'run_steps'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_publication_tables
                    WHERE pubname = 'supabase_realtime' AND schemaname = 'public' AND tablename = t) THEN
      EXECUTE format('ALTER PUBLICATION supabase_realtime ADD TABLE public.%I', t);
    END IF;
  END LOOP;
END
$$;
