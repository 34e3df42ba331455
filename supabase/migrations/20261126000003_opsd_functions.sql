-- opsd's SQL functions. All are SECURITY DEFINER with a pinned search_path;
-- who may call which is set in the security migration.

-- The JSON a claim returns: the run row plus the seq its next event must use.
CREATE OR REPLACE FUNCTION public.opsd_claimed_json(r public.runs) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT to_jsonb(r) - 'claim_token' || jsonb_build_object('next_seq',
    coalesce((SELECT max(e.seq) FROM public.run_events e WHERE e.run_id = r.id), 0) + 1)
$$;

-- Writes a System event with the next free seq of the run. The caller holds
-- the run's row lock, which serializes concurrent writers of these events.
CREATE OR REPLACE FUNCTION public.opsd_system_event(p_run_id uuid, p_level text, p_message text,
                                                    p_phase text, p_data jsonb) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  INSERT INTO public.run_events (run_id, seq, level, source, message, data, phase)
  SELECT p_run_id, coalesce(max(seq), 0) + 1, p_level, 'System', p_message, p_data, p_phase
  FROM public.run_events WHERE run_id = p_run_id
  ON CONFLICT (run_id, seq) DO NOTHING
$$;

-- Is a (session, lane) busy? A canceled run still executing counts.
CREATE OR REPLACE FUNCTION public.opsd_lane_busy(p_session uuid, p_lane text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT EXISTS (
    SELECT 1 FROM public.runs a
    WHERE a.session_id = p_session AND a.lane = p_lane
      AND (a.status = 'running' OR (a.status = 'canceled' AND a.finished_at IS NULL AND a.claimed_by IS NOT NULL)))
$$;

-- claim_run claims up to p_limit queued runs of one lane for p_worker, in
-- priority then created_at order. Within a session a lane runs one run at a
-- time (its head, under a per-(session, lane) advisory lock); sessionless runs
-- are claimed in parallel with FOR UPDATE SKIP LOCKED. Passing the same
-- p_claim_token again (a retry after a lost response) returns the runs that
-- token claimed instead of claiming more.
CREATE OR REPLACE FUNCTION public.claim_run(p_worker text, p_lane text, p_limit int DEFAULT 1,
                                            p_claim_token uuid DEFAULT NULL)
RETURNS SETOF jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  v_token   uuid := coalesce(p_claim_token, gen_random_uuid());
  v_claimed int := 0;
  c         record;
  r         public.runs;
BEGIN
  IF p_worker IS NULL OR btrim(p_worker) = '' THEN
    RAISE EXCEPTION 'claim_run: p_worker must be a non-empty worker id' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_lane IS NULL OR btrim(p_lane) = '' THEN
    RAISE EXCEPTION 'claim_run: p_lane must be a lane name such as A' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_limit IS NULL OR p_limit < 1 OR p_limit > 1000 THEN
    RAISE EXCEPTION 'claim_run: p_limit must be between 1 and 1000, got %', p_limit USING ERRCODE = 'invalid_parameter_value';
  END IF;

  IF p_claim_token IS NOT NULL THEN
    RETURN QUERY SELECT public.opsd_claimed_json(x) FROM public.runs x
      WHERE x.claim_token = p_claim_token AND x.claimed_by = p_worker AND x.status = 'running';
    IF FOUND THEN
      RETURN;
    END IF;
  END IF;

  -- Candidates in lane order: sessionless runs straight off their index, and
  -- the head run of every session whose lane is free (DISTINCT ON walks the
  -- session index in order, so nothing is sorted but the few candidates).
  FOR c IN
    SELECT q.id, q.session_id FROM (
      (SELECT x.id, NULL::uuid AS session_id, x.priority, x.created_at
         FROM public.runs x
        WHERE x.status = 'queued' AND x.lane = p_lane AND x.session_id IS NULL
        ORDER BY x.priority, x.created_at, x.id
        LIMIT p_limit * 2 + 8)
      UNION ALL
      (SELECT h.id, h.session_id, h.priority, h.created_at FROM (
          SELECT DISTINCT ON (x.session_id) x.id, x.session_id, x.priority, x.created_at
            FROM public.runs x
           WHERE x.status = 'queued' AND x.lane = p_lane AND x.session_id IS NOT NULL
           ORDER BY x.session_id, x.priority, x.created_at, x.id) h
        WHERE NOT EXISTS (
          SELECT 1 FROM public.runs a
           WHERE a.session_id = h.session_id AND a.lane = p_lane
             AND (a.status = 'running' OR (a.status = 'canceled' AND a.finished_at IS NULL AND a.claimed_by IS NOT NULL)))
        ORDER BY h.priority, h.created_at, h.id
        LIMIT p_limit * 2 + 8)
    ) q
    ORDER BY q.priority, q.created_at, q.id
  LOOP
    EXIT WHEN v_claimed >= p_limit;
    IF c.session_id IS NULL THEN
      UPDATE public.runs x
         SET status = 'running', claimed_by = p_worker, claimed_at = clock_timestamp(), heartbeat_at = clock_timestamp(),
             started_at = clock_timestamp(), attempt = x.attempt + 1, claim_token = v_token, phase = 'validate'
       WHERE x.id = (SELECT y.id FROM public.runs y WHERE y.id = c.id AND y.status = 'queued'
                     FOR UPDATE SKIP LOCKED)
      RETURNING * INTO r;
    ELSE
      CONTINUE WHEN NOT pg_try_advisory_xact_lock(
        hashtextextended('opsd.lane:' || c.session_id::text || ':' || p_lane, 0));
      -- A fresh snapshot after taking the lock sees any claim committed by
      -- the previous holder.
      CONTINUE WHEN public.opsd_lane_busy(c.session_id, p_lane);
      UPDATE public.runs x
         SET status = 'running', claimed_by = p_worker, claimed_at = clock_timestamp(), heartbeat_at = clock_timestamp(),
             started_at = clock_timestamp(), attempt = x.attempt + 1, claim_token = v_token, phase = 'validate'
       WHERE x.id = (SELECT y.id FROM public.runs y
                      WHERE y.session_id = c.session_id AND y.lane = p_lane AND y.status = 'queued'
                      ORDER BY y.priority, y.created_at, y.id LIMIT 1 FOR UPDATE)
         AND x.status = 'queued'
      RETURNING * INTO r;
    END IF;
    IF FOUND THEN
      v_claimed := v_claimed + 1;
      RETURN NEXT public.opsd_claimed_json(r);
    END IF;
  END LOOP;
END
$$;

-- Kept for old callers: claims across all lanes.
CREATE OR REPLACE FUNCTION public.claim_runs(p_worker text, p_limit int DEFAULT 1)
RETURNS SETOF public.runs
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  v_lane text;
  v_left int := p_limit;
  j      jsonb;
BEGIN
  FOR v_lane IN SELECT DISTINCT lane FROM public.runs WHERE status = 'queued' ORDER BY lane LOOP
    EXIT WHEN v_left <= 0;
    FOR j IN SELECT * FROM public.claim_run(p_worker, v_lane, v_left) LOOP
      v_left := v_left - 1;
      RETURN NEXT jsonb_populate_record(NULL::public.runs, j);
    END LOOP;
  END LOOP;
END
$$;

-- heartbeat_runs renews every lease a worker holds in one statement and says,
-- per run, whether it is still owned, was canceled, or is lost (reaped,
-- finished, or claimed by another attempt).
CREATE OR REPLACE FUNCTION public.heartbeat_runs(p_worker text, p_run_ids uuid[], p_attempts int[])
RETURNS TABLE (run_id uuid, state text, approved boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
BEGIN
  IF coalesce(array_length(p_run_ids, 1), 0) <> coalesce(array_length(p_attempts, 1), 0) THEN
    RAISE EXCEPTION 'heartbeat_runs: p_run_ids has % elements but p_attempts has %',
      coalesce(array_length(p_run_ids, 1), 0), coalesce(array_length(p_attempts, 1), 0)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN QUERY
  WITH req AS (
    SELECT t.id, t.attempt FROM unnest(p_run_ids, p_attempts) AS t (id, attempt)
  ), upd AS (
    UPDATE public.runs r SET heartbeat_at = now()
      FROM req
     WHERE r.id = req.id AND r.claimed_by = p_worker AND r.attempt = req.attempt
       AND r.finished_at IS NULL AND r.status IN ('running', 'canceled')
    RETURNING r.id, r.status, r.approved_at IS NOT NULL AS ok
  )
  SELECT req.id,
         CASE WHEN upd.id IS NULL THEN 'lost' WHEN upd.status = 'canceled' THEN 'canceled' ELSE 'owned' END,
         coalesce(upd.ok, false)
    FROM req LEFT JOIN upd ON upd.id = req.id;
END
$$;

-- Kept for old callers: one run's heartbeat.
CREATE OR REPLACE FUNCTION public.heartbeat_run(p_run_id uuid, p_worker text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  UPDATE public.runs SET heartbeat_at = now()
   WHERE id = p_run_id AND claimed_by = p_worker AND status = 'running';
  RETURN FOUND;
END
$$;

CREATE OR REPLACE FUNCTION public.set_run_phase(p_run_id uuid, p_worker text, p_attempt int, p_phase text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  IF p_phase IS NULL OR p_phase NOT IN ('validate', 'preflight', 'approval', 'action', 'verify', 'summarize') THEN
    RAISE EXCEPTION 'set_run_phase: unknown phase %', p_phase USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE public.runs SET phase = p_phase, heartbeat_at = now()
   WHERE id = p_run_id AND claimed_by = p_worker AND attempt = p_attempt
     AND status = 'running' AND finished_at IS NULL;
  RETURN FOUND;
END
$$;

-- finish_run is the fenced terminal write: only the current owner and attempt
-- may finish a run. A run canceled meanwhile stays canceled.
CREATE OR REPLACE FUNCTION public.finish_run(p_run_id uuid, p_worker text, p_attempt int, p_status text,
                                             p_error_message text DEFAULT NULL, p_output jsonb DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  IF p_status IS NULL OR p_status NOT IN ('success', 'error', 'canceled') THEN
    RAISE EXCEPTION 'finish_run: status must be success, error or canceled, got %', p_status
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE public.runs x
     SET status = CASE WHEN x.status = 'canceled' THEN 'canceled' ELSE p_status END,
         finished_at = clock_timestamp(), heartbeat_at = clock_timestamp(),
         error_message = CASE WHEN p_status = 'success' AND x.status <> 'canceled' THEN NULL
                              ELSE coalesce(p_error_message, x.error_message) END,
         output = coalesce(p_output, x.output)
   WHERE x.id = p_run_id AND x.claimed_by = p_worker AND x.attempt = p_attempt
     AND x.finished_at IS NULL AND x.status IN ('running', 'canceled');
  RETURN FOUND;
END
$$;

-- Kept for old callers: an unfenced finish. The old words succeeded/failed
-- are mapped to the statuses the CHECK accepts.
CREATE OR REPLACE FUNCTION public.complete_run(p_run_id uuid, p_status text, p_error_message text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  v_status text := CASE p_status WHEN 'succeeded' THEN 'success' WHEN 'failed' THEN 'error' ELSE p_status END;
BEGIN
  IF v_status IS NULL OR v_status NOT IN ('success', 'error', 'canceled') THEN
    RAISE EXCEPTION 'complete_run: status must be success, error or canceled, got %', p_status
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE public.runs x
     SET status = CASE WHEN x.status = 'canceled' THEN 'canceled' ELSE v_status END,
         finished_at = now(), error_message = coalesce(p_error_message, x.error_message)
   WHERE x.id = p_run_id AND x.finished_at IS NULL AND x.status IN ('running', 'canceled');
  RETURN FOUND;
END
$$;

-- release_run gives a run back to the queue (graceful shutdown before its
-- action phase). The attempt it used is given back too.
CREATE OR REPLACE FUNCTION public.release_run(p_run_id uuid, p_worker text, p_attempt int, p_reason text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  r public.runs;
BEGIN
  UPDATE public.runs x
     SET status = 'queued', claimed_by = NULL, claimed_at = NULL, heartbeat_at = NULL, started_at = NULL,
         phase = NULL, claim_token = NULL, attempt = greatest(x.attempt - 1, 0)
   WHERE x.id = p_run_id AND x.claimed_by = p_worker AND x.attempt = p_attempt AND x.status = 'running'
  RETURNING * INTO r;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM public.opsd_system_event(p_run_id, 'warn',
    format('worker %s released the run back to the queue: %s', p_worker, coalesce(p_reason, 'no reason given')),
    NULL, jsonb_build_object('worker', p_worker, 'attempt', p_attempt, 'action', 'released'));
  RETURN true;
END
$$;

-- reap_stale_runs acts on runs whose worker stopped heartbeating: a run that
-- never reached its action phase and has attempts left is requeued; any other
-- is failed with an error_message naming the phase; a canceled run is
-- finalized. Each action writes a System event. Rows are taken with SKIP
-- LOCKED, so concurrent reapers never act on the same run twice.
CREATE OR REPLACE FUNCTION public.reap_stale_runs(p_stale_seconds int DEFAULT 30)
RETURNS TABLE (run_id uuid, action text, phase text, worker text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
DECLARE
  r       public.runs;
  v_phase text;
  v_msg   text;
  v_act   text;
  v_level text;
BEGIN
  IF p_stale_seconds IS NULL OR p_stale_seconds < 1 THEN
    RAISE EXCEPTION 'reap_stale_runs: p_stale_seconds must be at least 1, got %', p_stale_seconds
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR r IN
    SELECT * FROM public.runs x
     WHERE (x.status = 'running' OR (x.status = 'canceled' AND x.finished_at IS NULL AND x.claimed_by IS NOT NULL))
       AND coalesce(x.heartbeat_at, x.claimed_at, x.created_at) < now() - make_interval(secs => p_stale_seconds)
     ORDER BY x.heartbeat_at
     LIMIT 500
     FOR UPDATE SKIP LOCKED
  LOOP
    v_phase := coalesce(r.phase, 'claim');
    IF r.status = 'canceled' THEN
      v_act := 'finalized';
      v_level := 'warn';
      v_msg := format('worker %s was lost in phase %s after the run was canceled; the cancel is final', r.claimed_by, v_phase);
      UPDATE public.runs x SET finished_at = now(),
             error_message = coalesce(x.error_message, format('canceled; worker %s was lost in phase %s', r.claimed_by, v_phase))
       WHERE x.id = r.id;
    ELSIF v_phase IN ('claim', 'validate', 'preflight', 'approval') AND r.attempt < r.max_attempts THEN
      v_act := 'requeued';
      v_level := 'warn';
      v_msg := format('worker %s was lost in phase %s (no heartbeat for %s s); the run never reached its action phase and was requeued (attempt %s of %s used)',
                      r.claimed_by, v_phase, p_stale_seconds, r.attempt, r.max_attempts);
      UPDATE public.runs x SET status = 'queued', claimed_by = NULL, claimed_at = NULL, heartbeat_at = NULL,
             started_at = NULL, phase = NULL, claim_token = NULL
       WHERE x.id = r.id;
    ELSE
      v_act := 'errored';
      v_level := 'error';
      v_msg := format('worker %s was lost in phase %s (no heartbeat for %s s)', r.claimed_by, v_phase, p_stale_seconds);
      UPDATE public.runs x SET status = 'error', finished_at = now(), error_message = v_msg
       WHERE x.id = r.id;
    END IF;
    PERFORM public.opsd_system_event(r.id, v_level, v_msg, r.phase,
      jsonb_build_object('worker', r.claimed_by, 'attempt', r.attempt, 'max_attempts', r.max_attempts,
                         'action', v_act, 'stale_seconds', p_stale_seconds));
    run_id := r.id; action := v_act; phase := v_phase; worker := r.claimed_by;
    RETURN NEXT;
  END LOOP;
END
$$;

-- The caller is the browser (anon or authenticated through PostgREST) when
-- the JWT claims say so; a direct connection or the service role is trusted.
CREATE OR REPLACE FUNCTION public.opsd_caller_is_user() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT coalesce(auth.role(), '') IN ('anon', 'authenticated')
$$;

-- cancel_run: a queued run is canceled and finished at once; a running run is
-- marked canceled and its owner's next heartbeat stops it; a terminal run is
-- left as it is. Users may cancel their own and shared runs.
CREATE OR REPLACE FUNCTION public.cancel_run(p_run_id uuid) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  v_old text;
BEGIN
  SELECT status INTO v_old FROM public.runs x
   WHERE x.id = p_run_id
     AND (NOT public.opsd_caller_is_user() OR x.created_by IS NULL OR x.created_by = auth.uid())
   FOR UPDATE;
  IF NOT FOUND OR v_old NOT IN ('queued', 'running') THEN
    RETURN false;
  END IF;
  -- The runs_canceled_event trigger writes the System event of a queued run.
  UPDATE public.runs SET status = 'canceled' WHERE id = p_run_id;
  RETURN true;
END
$$;

-- approve_run lets a run waiting before its action phase go on. From the
-- browser only authenticated users may approve (their uid is recorded); the
-- operator CLI passes its own name as p_approver.
CREATE OR REPLACE FUNCTION public.approve_run(p_run_id uuid, p_approver text DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  v_by text;
BEGIN
  IF coalesce(auth.role(), '') = 'anon' THEN
    RAISE EXCEPTION 'approve_run: only authenticated users may approve runs' USING ERRCODE = 'insufficient_privilege';
  END IF;
  v_by := CASE WHEN public.opsd_caller_is_user() THEN auth.uid()::text
               ELSE coalesce(nullif(btrim(p_approver), ''), 'service_role') END;
  UPDATE public.runs x SET approved_by = v_by, approved_at = now()
   WHERE x.id = p_run_id AND x.status IN ('queued', 'running') AND x.approved_at IS NULL
     AND (NOT public.opsd_caller_is_user() OR x.created_by IS NULL OR x.created_by = auth.uid());
  RETURN FOUND;
END
$$;

-- Kept for old callers: insert a queued run.
CREATE OR REPLACE FUNCTION public.enqueue_run(p_env text, p_kind text, p_plan jsonb DEFAULT NULL) RETURNS uuid
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  INSERT INTO public.runs (env, kind, plan, intent, created_by)
  VALUES (p_env, p_kind, p_plan, coalesce(p_plan ->> 'title', ''), auth.uid())
  RETURNING id
$$;

CREATE OR REPLACE FUNCTION public.ping() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT 'pong'::text
$$;

-- The newest opsd migration applied, for readiness checks and `opsd doctor`.
CREATE OR REPLACE FUNCTION public.opsd_schema_version() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT max(version) FROM supabase_migrations.schema_migrations WHERE name LIKE 'opsd\_%'
$$;

CREATE OR REPLACE FUNCTION public.opsd_lane_counts()
RETURNS TABLE (lane text, queued int, running int)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT x.lane,
         (count(*) FILTER (WHERE x.status = 'queued'))::int,
         (count(*) FILTER (WHERE x.status = 'running'))::int
    FROM public.runs x
   WHERE x.status IN ('queued', 'running')
   GROUP BY x.lane
   ORDER BY x.lane
$$;
