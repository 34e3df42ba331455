-- The trust boundary (issue 11): the database, not the client's timing,
-- fences every write of a run's rows; leases expire on a deadline the owning
-- daemon set, not on a threshold each reaper chooses; the fencing token
-- (attempt) only grows; approvals come from a listed approver who did not
-- create the run; browser callers get only the rights the frontend needs.
-- Additive only: every column is new and nullable or defaulted, and the
-- frontend's calls keep their names and arguments.

ALTER TABLE public.runs
  -- When the current lease ends unless renewed: set by claim_run and
  -- heartbeat_runs from the owning daemon's own stale-after setting. The
  -- reaper acts on this deadline alone.
  ADD COLUMN IF NOT EXISTS lease_expires_at timestamptz NULL,
  -- A queued run is not claimed before this time (retry backoff).
  ADD COLUMN IF NOT EXISTS not_before       timestamptz NULL,
  -- Attempts that count against max_attempts. attempt is the fencing token
  -- and only grows; a release gives back one of attempts_used instead.
  ADD COLUMN IF NOT EXISTS attempts_used    int NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS rejected_by      text NULL,
  ADD COLUMN IF NOT EXISTS rejected_at      timestamptz NULL;

UPDATE public.runs SET attempts_used = attempt WHERE attempts_used = 0 AND attempt > 0;
UPDATE public.runs SET lease_expires_at = coalesce(heartbeat_at, claimed_at, created_at) + interval '30 seconds'
 WHERE lease_expires_at IS NULL AND finished_at IS NULL AND claimed_by IS NOT NULL;

-- Who may approve runs: authenticated users (by auth uid) listed here by an
-- operator (`opsd approvers add`). Nobody approves a run they created.
CREATE TABLE IF NOT EXISTS public.approvers (
  user_id  uuid PRIMARY KEY,
  name     text NOT NULL DEFAULT '',
  added_by text NOT NULL DEFAULT current_user,
  added_at timestamptz NOT NULL DEFAULT now()
);

-- Writes that bypass the row fence below: the SQL functions that have
-- already checked the lease (or are the system's own events) set
-- opsd.fenced_write for the duration of their insert.
CREATE OR REPLACE FUNCTION public.opsd_fenced_write(p_on boolean) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, public AS $$
  SELECT set_config('opsd.fenced_write', CASE WHEN p_on THEN 'on' ELSE 'off' END, true)
$$;

-- Rows of run_events, run_steps and artifacts exist only for runs in flight
-- (running, or canceled and not yet finished), whoever writes them: a row for
-- a queued, finished or missing run is refused. The daemon's writes come
-- through the fenced functions below, which also check the writer's lease.
CREATE OR REPLACE FUNCTION public.opsd_rows_fence() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  v_run    uuid;
  v_status text;
BEGIN
  IF current_setting('opsd.fenced_write', true) = 'on' THEN
    RETURN NULL;
  END IF;
  SELECT n.run_id, coalesce(r.status, 'missing') INTO v_run, v_status
    FROM opsd_new_rows n LEFT JOIN public.runs r ON r.id = n.run_id
   WHERE r.id IS NULL OR NOT (r.status IN ('running', 'canceled') AND r.finished_at IS NULL AND r.claimed_by IS NOT NULL)
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION '%: run % is %: rows are written only while a daemon holds the run''s lease', TG_TABLE_NAME, v_run, v_status
      USING ERRCODE = 'check_violation', HINT = 'the daemon writes through append_run_rows, put_artifact and finish_run';
  END IF;
  RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS run_events_fence ON public.run_events;
CREATE TRIGGER run_events_fence AFTER INSERT ON public.run_events
  REFERENCING NEW TABLE AS opsd_new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.opsd_rows_fence();
DROP TRIGGER IF EXISTS artifacts_fence ON public.artifacts;
CREATE TRIGGER artifacts_fence AFTER INSERT ON public.artifacts
  REFERENCING NEW TABLE AS opsd_new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.opsd_rows_fence();
DROP TRIGGER IF EXISTS run_steps_fence_insert ON public.run_steps;
CREATE TRIGGER run_steps_fence_insert AFTER INSERT ON public.run_steps
  REFERENCING NEW TABLE AS opsd_new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.opsd_rows_fence();
DROP TRIGGER IF EXISTS run_steps_fence_update ON public.run_steps;
CREATE TRIGGER run_steps_fence_update AFTER UPDATE ON public.run_steps
  REFERENCING NEW TABLE AS opsd_new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.opsd_rows_fence();

-- System events (reaper, release, cancel of a queued run) are the
-- database's own: they bypass the fence. The caller holds the run's row lock.
CREATE OR REPLACE FUNCTION public.opsd_system_event(p_run_id uuid, p_level text, p_message text,
                                                    p_phase text, p_data jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  PERFORM public.opsd_fenced_write(true);
  INSERT INTO public.run_events (run_id, seq, level, source, message, data, phase)
  SELECT p_run_id, coalesce(max(seq), 0) + 1, p_level, 'System', p_message, p_data, p_phase
    FROM public.run_events WHERE run_id = p_run_id
  ON CONFLICT (run_id, seq) DO NOTHING;
  PERFORM public.opsd_fenced_write(false);
END
$$;

CREATE OR REPLACE FUNCTION public.opsd_runs_canceled_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  IF NEW.rejected_at IS NOT NULL THEN
    PERFORM public.opsd_system_event(NEW.id, 'warn',
      format('run rejected by %s before it started: %s', NEW.rejected_by, coalesce(NEW.error_message, 'no reason given')),
      NULL, jsonb_build_object('action', 'rejected', 'rejected_by', NEW.rejected_by));
  ELSE
    PERFORM public.opsd_system_event(NEW.id, 'warn', 'run canceled before it started', NULL,
      jsonb_build_object('action', 'canceled'));
  END IF;
  RETURN NULL;
END
$$;

-- The leases of a batch that are still held: (run, attempt) pairs whose run
-- is in flight under p_worker, share-locked in id order so that a reaper,
-- a finish or a claim cannot change them until the caller's transaction ends.
CREATE OR REPLACE FUNCTION public.opsd_held_leases(p_worker text, p_run_ids uuid[], p_attempts int[])
RETURNS TABLE (run_id uuid, attempt int)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT r.id, r.attempt FROM public.runs r
   WHERE (r.id, r.attempt) IN (SELECT t.id, t.attempt FROM unnest(p_run_ids, p_attempts) AS t (id, attempt))
     AND r.claimed_by = p_worker AND r.finished_at IS NULL AND r.status IN ('running', 'canceled')
   ORDER BY r.id
   FOR SHARE OF r
$$;

-- opsd_phase_rank orders the phases of a run: a phase change recorded
-- through append_run_rows only moves a run forward, so a batched change
-- that lands after a later synchronous one (the action phase) is ignored.
CREATE OR REPLACE FUNCTION public.opsd_phase_rank(p_phase text) RETURNS int
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, public AS $$
  SELECT coalesce(array_position(ARRAY['validate', 'preflight', 'approval', 'action', 'verify', 'summarize'], p_phase), 0)
$$;

-- append_run_rows stores a batch of events, step rows, phase changes and
-- finishes of several runs in one transaction (the daemon's group commit,
-- one call per flush instead of a round trip per row kind and per run). A
-- finish is finish_run's terminal write (p_finishes rows: run_id, attempt,
-- status, error_message, output), made after the batch's rows, so a run's
-- final event (in p_events) and its status land together. Each row
-- names its run and the attempt that wrote it; rows are stored only for runs
-- in flight under (p_worker, attempt). It returns the (run, attempt) pairs
-- whose rows were refused (the lease is gone: reaped, finished, or claimed
-- again). Retrying a batch is a no-op: events conflict on (run_id, seq),
-- steps are upserted on (run_id, idx), and a phase change only moves a run's
-- phase forward (opsd_phase_rank), so the synchronous change into action is
-- never undone by a late batch. A replayed finish is refused (the run is
-- finished), like a second finish_run.
DROP FUNCTION IF EXISTS public.append_run_rows(text, jsonb, jsonb);
DROP FUNCTION IF EXISTS public.append_run_rows(text, jsonb, jsonb, jsonb);
CREATE OR REPLACE FUNCTION public.append_run_rows(p_worker text, p_events jsonb DEFAULT NULL, p_steps jsonb DEFAULT NULL,
                                                  p_phases jsonb DEFAULT NULL, p_finishes jsonb DEFAULT NULL)
RETURNS TABLE (run_id uuid, attempt int)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
DECLARE
  v_ids      uuid[];
  v_attempts int[];
  v_held     uuid[]; -- with v_held_at: the (run, attempt) pairs whose lease p_worker holds
  v_held_at  int[];
BEGIN
  IF p_worker IS NULL OR btrim(p_worker) = '' THEN
    RAISE EXCEPTION 'append_run_rows: p_worker must be the writing worker id' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_events IS NOT NULL AND jsonb_typeof(p_events) <> 'array' OR p_steps IS NOT NULL AND jsonb_typeof(p_steps) <> 'array'
     OR p_phases IS NOT NULL AND jsonb_typeof(p_phases) <> 'array'
     OR p_finishes IS NOT NULL AND jsonb_typeof(p_finishes) <> 'array' THEN
    RAISE EXCEPTION 'append_run_rows: p_events, p_steps, p_phases and p_finishes must be JSON arrays of rows'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_finishes IS NOT NULL AND EXISTS (
      SELECT 1 FROM jsonb_to_recordset(p_finishes) AS f (status text)
       WHERE f.status IS NULL OR f.status NOT IN ('success', 'error', 'canceled')) THEN
    RAISE EXCEPTION 'append_run_rows: a finish''s status must be success, error or canceled' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_phases IS NOT NULL AND EXISTS (
      SELECT 1 FROM jsonb_to_recordset(p_phases) AS p (phase text) WHERE public.opsd_phase_rank(p.phase) = 0) THEN
    RAISE EXCEPTION 'append_run_rows: unknown phase in p_phases' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT array_agg(k.run_id), array_agg(k.attempt) INTO v_ids, v_attempts FROM (
    SELECT DISTINCT x.run_id, x.attempt FROM (
      SELECT e.run_id, e.attempt FROM jsonb_to_recordset(coalesce(p_events, '[]')) AS e (run_id uuid, attempt int)
      UNION ALL
      SELECT s.run_id, s.attempt FROM jsonb_to_recordset(coalesce(p_steps, '[]')) AS s (run_id uuid, attempt int)
      UNION ALL
      SELECT p.run_id, p.attempt FROM jsonb_to_recordset(coalesce(p_phases, '[]')) AS p (run_id uuid, attempt int)
      UNION ALL
      SELECT f.run_id, f.attempt FROM jsonb_to_recordset(coalesce(p_finishes, '[]')) AS f (run_id uuid, attempt int)) x) k;
  IF v_ids IS NULL THEN
    RETURN;
  END IF;
  IF array_position(v_attempts, NULL) IS NOT NULL OR array_position(v_ids, NULL) IS NOT NULL THEN
    RAISE EXCEPTION 'append_run_rows: every row needs run_id and attempt (the writer''s lease)' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- A row is stored only under the lease of the attempt that wrote it: a
  -- held later attempt of the same run lets no row of an earlier one through.
  SELECT array_agg(h.run_id), array_agg(h.attempt) INTO v_held, v_held_at
    FROM public.opsd_held_leases(p_worker, v_ids, v_attempts) h;
  v_held := coalesce(v_held, '{}');
  v_held_at := coalesce(v_held_at, '{}');

  PERFORM public.opsd_fenced_write(true);
  IF p_events IS NOT NULL THEN
    INSERT INTO public.run_events (run_id, seq, ts, level, source, message, data, phase)
    SELECT e.run_id, e.seq, coalesce(e.ts, now()), e.level, e.source, e.message, e.data, e.phase
      FROM jsonb_to_recordset(p_events) AS e (run_id uuid, attempt int, seq int, ts timestamptz, level text, source text,
                                              message text, data jsonb, phase text)
     WHERE (e.run_id, e.attempt) IN (SELECT h.id, h.attempt FROM unnest(v_held, v_held_at) AS h (id, attempt))
    ON CONFLICT (run_id, seq) DO NOTHING;
  END IF;
  IF p_steps IS NOT NULL THEN
    INSERT INTO public.run_steps (run_id, idx, step_id, title, kind, tool, action, args, status, started_at, finished_at, error)
    SELECT s.run_id, s.idx, s.step_id, s.title, coalesce(s.kind, 'system'), s.tool, s.action,
           coalesce(s.args, '{}'::jsonb), coalesce(s.status, 'queued')::public.step_status,
           s.started_at, s.finished_at, s.error
      FROM jsonb_to_recordset(p_steps) AS s (run_id uuid, attempt int, idx int, step_id text, title text, kind text,
                                             tool text, action text, args jsonb, status text, started_at timestamptz,
                                             finished_at timestamptz, error text)
     WHERE (s.run_id, s.attempt) IN (SELECT h.id, h.attempt FROM unnest(v_held, v_held_at) AS h (id, attempt))
    ON CONFLICT (run_id, idx) DO UPDATE
       SET step_id = excluded.step_id, title = excluded.title, kind = excluded.kind, tool = excluded.tool,
           action = excluded.action, args = excluded.args, status = excluded.status,
           started_at = excluded.started_at, finished_at = excluded.finished_at, error = excluded.error;
  END IF;
  PERFORM public.opsd_fenced_write(false);
  IF p_phases IS NOT NULL THEN
    -- The newest change of each run wins; the run only moves forward.
    UPDATE public.runs x SET phase = p.phase, heartbeat_at = now()
      FROM (SELECT DISTINCT ON (q.run_id) q.run_id, q.phase
              FROM ROWS FROM (jsonb_to_recordset(p_phases) AS (run_id uuid, attempt int, phase text))
                   WITH ORDINALITY AS q (run_id, attempt, phase, n)
              WHERE (q.run_id, q.attempt) IN (SELECT h.id, h.attempt FROM unnest(v_held, v_held_at) AS h (id, attempt))
             ORDER BY q.run_id, q.n DESC) p
     WHERE x.id = p.run_id
       AND public.opsd_phase_rank(p.phase) > public.opsd_phase_rank(x.phase);
  END IF;
  IF p_finishes IS NOT NULL THEN
    -- As finish_run: a run canceled meanwhile stays canceled, with the
    -- message of its cancel or rejection when it has one.
    UPDATE public.runs x
       SET status = CASE WHEN x.status = 'canceled' THEN 'canceled' ELSE f.status END,
           finished_at = clock_timestamp(), heartbeat_at = clock_timestamp(), lease_expires_at = NULL,
           error_message = CASE WHEN x.status = 'canceled' AND x.rejected_at IS NOT NULL THEN x.error_message
                                WHEN f.status = 'success' AND x.status <> 'canceled' THEN NULL
                                ELSE coalesce(f.error_message, x.error_message) END,
           output = coalesce(f.output, x.output)
      FROM (SELECT DISTINCT ON (q.run_id) q.* FROM jsonb_to_recordset(p_finishes)
              AS q (run_id uuid, attempt int, status text, error_message text, output jsonb)
             WHERE (q.run_id, q.attempt) IN (SELECT h.id, h.attempt FROM unnest(v_held, v_held_at) AS h (id, attempt))) f
     WHERE x.id = f.run_id AND x.attempt = f.attempt AND x.id = ANY (v_held) AND x.claimed_by = p_worker
       AND x.finished_at IS NULL AND x.status IN ('running', 'canceled');
  END IF;

  RETURN QUERY SELECT t.id, t.attempt FROM unnest(v_ids, v_attempts) AS t (id, attempt)
    WHERE (t.id, t.attempt) NOT IN (SELECT h.id, h.attempt FROM unnest(v_held, v_held_at) AS h (id, attempt));
END
$$;

-- put_artifact stores one artifact of a run in flight under the lease;
-- NULL when the lease is gone.
CREATE OR REPLACE FUNCTION public.put_artifact(p_worker text, p_run_id uuid, p_attempt int,
                                               p_kind text, p_title text, p_value text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  v_id bigint;
BEGIN
  PERFORM 1 FROM public.opsd_held_leases(p_worker, ARRAY[p_run_id], ARRAY[p_attempt]);
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  PERFORM public.opsd_fenced_write(true);
  INSERT INTO public.artifacts (run_id, kind, title, value) VALUES (p_run_id, p_kind, p_title, p_value)
  RETURNING id INTO v_id;
  PERFORM public.opsd_fenced_write(false);
  RETURN v_id;
END
$$;

-- put_spec_doc writes a spec_docs row by slug for a run in flight under the
-- lease; false when the lease is gone.
CREATE OR REPLACE FUNCTION public.put_spec_doc(p_worker text, p_run_id uuid, p_attempt int,
                                               p_slug text, p_title text, p_content text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  PERFORM 1 FROM public.opsd_held_leases(p_worker, ARRAY[p_run_id], ARRAY[p_attempt]);
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  INSERT INTO public.spec_docs (slug, title, content) VALUES (p_slug, p_title, p_content)
  ON CONFLICT (slug) DO UPDATE SET title = excluded.title, content = excluded.content;
  RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION public.opsd_lease_interval(p_op text, p_lease_seconds int) RETURNS interval
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, public AS $$
BEGIN
  IF p_lease_seconds IS NULL OR p_lease_seconds < 1 OR p_lease_seconds > 86400 THEN
    RAISE EXCEPTION '%: p_lease_seconds must be between 1 and 86400, got %', p_op, p_lease_seconds
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN make_interval(secs => p_lease_seconds);
END
$$;

-- claim_run claims up to p_limit queued runs of one lane for p_worker, in
-- priority then created_at order, skipping runs whose not_before is ahead.
-- Within a session a lane runs one run at a time (its head, under a
-- per-(session, lane) advisory lock); sessionless runs are claimed in
-- parallel with FOR UPDATE SKIP LOCKED. Each claimed run's lease ends
-- p_lease_seconds from now unless heartbeat_runs renews it. Passing the same
-- p_claim_token again (a retry after a lost response) returns the runs that
-- token claimed instead of claiming more.
DROP FUNCTION IF EXISTS public.claim_run(text, text, int, uuid);
CREATE OR REPLACE FUNCTION public.claim_run(p_worker text, p_lane text, p_limit int DEFAULT 1,
                                            p_claim_token uuid DEFAULT NULL, p_lease_seconds int DEFAULT 30)
RETURNS SETOF jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  v_token   uuid := coalesce(p_claim_token, gen_random_uuid());
  v_lease   interval := public.opsd_lease_interval('claim_run', p_lease_seconds);
  v_claimed int := 0;
  v_now     timestamptz := clock_timestamp();
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

  -- A replay renews the leases it returns: the daemon starts those runs
  -- only now, and the lost answer may have cost most of their lease.
  IF p_claim_token IS NOT NULL THEN
    RETURN QUERY WITH u AS (
        UPDATE public.runs x SET heartbeat_at = clock_timestamp(), lease_expires_at = clock_timestamp() + v_lease
         WHERE x.claim_token = p_claim_token AND x.claimed_by = p_worker AND x.status = 'running'
           AND x.finished_at IS NULL
        RETURNING x.*)
      SELECT public.opsd_claimed_json(ROW(u.*)::public.runs) FROM u;
    IF FOUND THEN
      RETURN;
    END IF;
  END IF;

  FOR c IN
    SELECT q.id, q.session_id FROM (
      (SELECT x.id, NULL::uuid AS session_id, x.priority, x.created_at
         FROM public.runs x
        WHERE x.status = 'queued' AND x.lane = p_lane AND x.session_id IS NULL
          AND (x.not_before IS NULL OR x.not_before <= v_now)
        ORDER BY x.priority, x.created_at, x.id
        LIMIT p_limit * 2 + 8)
      UNION ALL
      -- The head of each session with queued runs in the lane: the
      -- sessions are walked one index probe each (a loose index scan over
      -- runs_claim_session_idx), then one probe per head, so a claim costs
      -- as many probes as there are sessions, not a sort of the whole queue.
      (WITH RECURSIVE s (session_id) AS (
          (SELECT x.session_id FROM public.runs x
            WHERE x.status = 'queued' AND x.lane = p_lane AND x.session_id IS NOT NULL
            ORDER BY x.session_id LIMIT 1)
          UNION ALL
          SELECT (SELECT x.session_id FROM public.runs x
                   WHERE x.status = 'queued' AND x.lane = p_lane AND x.session_id IS NOT NULL
                     AND x.session_id > s.session_id
                   ORDER BY x.session_id LIMIT 1)
            FROM s WHERE s.session_id IS NOT NULL)
       SELECT h.id, h.session_id, h.priority, h.created_at FROM s CROSS JOIN LATERAL (
          SELECT x.id, x.session_id, x.priority, x.created_at, x.not_before FROM public.runs x
           WHERE x.status = 'queued' AND x.lane = p_lane AND x.session_id = s.session_id
           ORDER BY x.priority, x.created_at, x.id LIMIT 1) h
        WHERE (h.not_before IS NULL OR h.not_before <= v_now)
          AND NOT EXISTS (
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
             lease_expires_at = clock_timestamp() + v_lease, started_at = clock_timestamp(),
             attempt = x.attempt + 1, attempts_used = x.attempts_used + 1, claim_token = v_token, phase = 'validate',
             not_before = NULL
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
             lease_expires_at = clock_timestamp() + v_lease, started_at = clock_timestamp(),
             attempt = x.attempt + 1, attempts_used = x.attempts_used + 1, claim_token = v_token, phase = 'validate',
             not_before = NULL
       WHERE x.id = (SELECT y.id FROM public.runs y
                      WHERE y.session_id = c.session_id AND y.lane = p_lane AND y.status = 'queued'
                      ORDER BY y.priority, y.created_at, y.id LIMIT 1 FOR UPDATE)
         AND x.status = 'queued' AND (x.not_before IS NULL OR x.not_before <= v_now)
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
    FOR j IN SELECT * FROM public.claim_run(p_worker, v_lane, v_left, NULL, 30) LOOP
      v_left := v_left - 1;
      RETURN NEXT jsonb_populate_record(NULL::public.runs, j);
    END LOOP;
  END LOOP;
END
$$;

-- heartbeat_runs renews every lease a worker holds in one statement (each
-- lease then ends p_lease_seconds from now) and says, per run, whether it is
-- still owned, was canceled, or is lost (reaped, finished, or claimed by
-- another attempt); with who approved it, and the message of a cancel or
-- rejection. Rows are locked in id order, like append_run_rows, so the two
-- never deadlock.
DROP FUNCTION IF EXISTS public.heartbeat_runs(text, uuid[], int[]);
CREATE OR REPLACE FUNCTION public.heartbeat_runs(p_worker text, p_run_ids uuid[], p_attempts int[],
                                                 p_lease_seconds int DEFAULT 30)
RETURNS TABLE (run_id uuid, state text, approved boolean, approved_by text, message text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
DECLARE
  v_lease interval := public.opsd_lease_interval('heartbeat_runs', p_lease_seconds);
BEGIN
  IF coalesce(array_length(p_run_ids, 1), 0) <> coalesce(array_length(p_attempts, 1), 0) THEN
    RAISE EXCEPTION 'heartbeat_runs: p_run_ids has % elements but p_attempts has %',
      coalesce(array_length(p_run_ids, 1), 0), coalesce(array_length(p_attempts, 1), 0)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN QUERY
  WITH req AS (
    SELECT t.id, t.attempt FROM unnest(p_run_ids, p_attempts) AS t (id, attempt)
  ), mine AS (
    SELECT r.id FROM public.runs r JOIN req ON r.id = req.id AND r.attempt = req.attempt
     WHERE r.claimed_by = p_worker AND r.finished_at IS NULL AND r.status IN ('running', 'canceled')
     ORDER BY r.id
     FOR NO KEY UPDATE OF r
  ), upd AS (
    UPDATE public.runs r SET heartbeat_at = now(), lease_expires_at = now() + v_lease
      FROM mine
     WHERE r.id = mine.id
    RETURNING r.id, r.status, r.approved_at IS NOT NULL AS ok, r.approved_by, r.error_message
  )
  SELECT req.id,
         CASE WHEN upd.id IS NULL THEN 'lost' WHEN upd.status = 'canceled' THEN 'canceled' ELSE 'owned' END,
         coalesce(upd.ok, false), upd.approved_by,
         CASE WHEN upd.status = 'canceled' THEN upd.error_message END
    FROM req LEFT JOIN upd ON upd.id = req.id;
END
$$;

-- finish_run is the fenced terminal write: only the current owner and attempt
-- may finish a run. p_events (rows shaped like append_run_rows') are stored
-- in the same transaction, so the final event and the status land together
-- or not at all. A run canceled meanwhile stays canceled, with the message
-- of its cancel or rejection when it has one.
DROP FUNCTION IF EXISTS public.finish_run(uuid, text, int, text, text, jsonb);
CREATE OR REPLACE FUNCTION public.finish_run(p_run_id uuid, p_worker text, p_attempt int, p_status text,
                                             p_error_message text DEFAULT NULL, p_output jsonb DEFAULT NULL,
                                             p_events jsonb DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  IF p_status IS NULL OR p_status NOT IN ('success', 'error', 'canceled') THEN
    RAISE EXCEPTION 'finish_run: status must be success, error or canceled, got %', p_status
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_events IS NOT NULL AND jsonb_typeof(p_events) <> 'array' THEN
    RAISE EXCEPTION 'finish_run: p_events must be a JSON array of rows' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM 1 FROM public.opsd_held_leases(p_worker, ARRAY[p_run_id], ARRAY[p_attempt]);
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  IF p_events IS NOT NULL THEN
    PERFORM public.opsd_fenced_write(true);
    INSERT INTO public.run_events (run_id, seq, ts, level, source, message, data, phase)
    SELECT p_run_id, e.seq, coalesce(e.ts, now()), e.level, e.source, e.message, e.data, e.phase
      FROM jsonb_to_recordset(p_events) AS e (run_id uuid, seq int, ts timestamptz, level text, source text,
                                              message text, data jsonb, phase text)
     WHERE e.run_id IS NULL OR e.run_id = p_run_id
    ON CONFLICT (run_id, seq) DO NOTHING;
    PERFORM public.opsd_fenced_write(false);
  END IF;
  UPDATE public.runs x
     SET status = CASE WHEN x.status = 'canceled' THEN 'canceled' ELSE p_status END,
         finished_at = clock_timestamp(), heartbeat_at = clock_timestamp(), lease_expires_at = NULL,
         error_message = CASE WHEN x.status = 'canceled' AND x.rejected_at IS NOT NULL THEN x.error_message
                              WHEN p_status = 'success' AND x.status <> 'canceled' THEN NULL
                              ELSE coalesce(p_error_message, x.error_message) END,
         output = coalesce(p_output, x.output)
   WHERE x.id = p_run_id AND x.claimed_by = p_worker AND x.attempt = p_attempt
     AND x.finished_at IS NULL AND x.status IN ('running', 'canceled');
  RETURN FOUND;
END
$$;

-- release_run gives a run back to the queue (graceful shutdown before its
-- action phase). The attempt number stays (it is the fencing token); the
-- attempt no longer counts against max_attempts.
CREATE OR REPLACE FUNCTION public.release_run(p_run_id uuid, p_worker text, p_attempt int, p_reason text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  UPDATE public.runs x
     SET status = 'queued', claimed_by = NULL, claimed_at = NULL, heartbeat_at = NULL, started_at = NULL,
         lease_expires_at = NULL, phase = NULL, claim_token = NULL, attempts_used = greatest(x.attempts_used - 1, 0)
   WHERE x.id = p_run_id AND x.claimed_by = p_worker AND x.attempt = p_attempt AND x.status = 'running'
     AND x.finished_at IS NULL;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM public.opsd_system_event(p_run_id, 'warn',
    format('worker %s released the run back to the queue: %s', p_worker, coalesce(p_reason, 'no reason given')),
    NULL, jsonb_build_object('worker', p_worker, 'attempt', p_attempt, 'action', 'released'));
  RETURN true;
END
$$;

-- reap_stale_runs acts on runs whose lease expired (the deadline the owning
-- daemon set through claim_run and heartbeat_runs; no caller chooses it): a
-- run that never reached its action phase and has attempts left is requeued;
-- any other is failed with an error_message naming the phase; a canceled run
-- is finalized. Each action writes a System event. Rows are taken with SKIP
-- LOCKED, so concurrent reapers never act on the same run twice, and a run
-- whose rows are being written is left for the next pass.
DROP FUNCTION IF EXISTS public.reap_stale_runs(int);
CREATE OR REPLACE FUNCTION public.reap_stale_runs()
RETURNS TABLE (run_id uuid, action text, phase text, worker text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
DECLARE
  r       public.runs;
  v_phase text;
  v_msg   text;
  v_act   text;
  v_level text;
  v_since text;
BEGIN
  FOR r IN
    SELECT * FROM public.runs x
     WHERE (x.status = 'running' OR (x.status = 'canceled' AND x.finished_at IS NULL AND x.claimed_by IS NOT NULL))
       AND coalesce(x.lease_expires_at, coalesce(x.heartbeat_at, x.claimed_at, x.created_at) + interval '30 seconds') < now()
     ORDER BY x.lease_expires_at
     LIMIT 500
     FOR UPDATE SKIP LOCKED
  LOOP
    v_phase := coalesce(r.phase, 'claim');
    v_since := format('its lease expired at %s; last heartbeat %s', r.lease_expires_at, coalesce(r.heartbeat_at::text, 'never'));
    IF r.status = 'canceled' THEN
      v_act := 'finalized';
      v_level := 'warn';
      v_msg := format('worker %s was lost in phase %s after the run was canceled; the cancel is final', r.claimed_by, v_phase);
      UPDATE public.runs x SET finished_at = now(), lease_expires_at = NULL,
             error_message = coalesce(x.error_message, format('canceled; worker %s was lost in phase %s', r.claimed_by, v_phase))
       WHERE x.id = r.id;
    ELSIF v_phase IN ('claim', 'validate', 'preflight', 'approval') AND r.attempts_used < r.max_attempts THEN
      v_act := 'requeued';
      v_level := 'warn';
      v_msg := format('worker %s was lost in phase %s (%s); the run never reached its action phase and was requeued (attempt %s of %s used)',
                      r.claimed_by, v_phase, v_since, r.attempts_used, r.max_attempts);
      UPDATE public.runs x SET status = 'queued', claimed_by = NULL, claimed_at = NULL, heartbeat_at = NULL,
             lease_expires_at = NULL, started_at = NULL, phase = NULL, claim_token = NULL
       WHERE x.id = r.id;
    ELSE
      v_act := 'errored';
      v_level := 'error';
      v_msg := format('worker %s was lost in phase %s (%s)', r.claimed_by, v_phase, v_since);
      UPDATE public.runs x SET status = 'error', finished_at = now(), lease_expires_at = NULL, error_message = v_msg
       WHERE x.id = r.id;
    END IF;
    PERFORM public.opsd_system_event(r.id, v_level, v_msg, r.phase,
      jsonb_build_object('worker', r.claimed_by, 'attempt', r.attempt, 'max_attempts', r.max_attempts,
                         'action', v_act, 'lease_expires_at', r.lease_expires_at));
    run_id := r.id; action := v_act; phase := v_phase; worker := r.claimed_by;
    RETURN NEXT;
  END LOOP;
END
$$;

-- The browser role a caller acts as ('anon' or 'authenticated'), or '' for
-- the service role and trusted direct connections. PostgREST says it in the
-- JWT claims; a direct connection as a browser role (SET ROLE, or a login)
-- counts as that role even without claims.
CREATE OR REPLACE FUNCTION public.opsd_caller_role() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT CASE
    WHEN coalesce(auth.role(), '') IN ('anon', 'authenticated') THEN auth.role()
    WHEN current_setting('role') IN ('anon', 'authenticated') THEN current_setting('role')
    WHEN session_user::text IN ('anon', 'authenticated') THEN session_user::text
    ELSE '' END
$$;

CREATE OR REPLACE FUNCTION public.opsd_caller_is_user() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT public.opsd_caller_role() <> ''
$$;

-- The approver a caller acts as, or an error that says why it may not
-- approve or reject. Browser callers must be authenticated and listed in
-- approvers; the service role and direct connections (the operator CLI) must
-- name the operator, recorded as operator:<name>.
CREATE OR REPLACE FUNCTION public.opsd_approver(p_op text, p_approver text) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  IF public.opsd_caller_role() = 'anon' THEN
    RAISE EXCEPTION '%: anonymous callers may not approve or reject runs; sign in as a listed approver', p_op
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF public.opsd_caller_is_user() THEN
    IF auth.uid() IS NULL THEN
      RAISE EXCEPTION '%: the caller has no user id; sign in as a listed approver', p_op USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM public.approvers a WHERE a.user_id = auth.uid()) THEN
      RAISE EXCEPTION '%: user % is not an approver', p_op, auth.uid()
        USING ERRCODE = 'insufficient_privilege', HINT = 'an operator adds approvers with: opsd approvers add <user id>';
    END IF;
    RETURN auth.uid()::text;
  END IF;
  IF p_approver IS NULL OR btrim(p_approver) = '' THEN
    RAISE EXCEPTION '%: p_approver must name the operator (opsd approve --as NAME)', p_op USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN 'operator:' || btrim(p_approver);
END
$$;

-- The run an approver acts on, locked; an error when there is none.
CREATE OR REPLACE FUNCTION public.opsd_run_for_approval(p_op text, p_run_id uuid) RETURNS public.runs
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  r public.runs;
BEGIN
  SELECT * INTO r FROM public.runs x WHERE x.id = p_run_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION '%: run % not found', p_op, p_run_id USING ERRCODE = 'no_data_found';
  END IF;
  RETURN r;
END
$$;

-- opsd_four_eyes refuses a browser approver who asked for the run: its
-- creator. (The operations migration widens it with the audit trail, to
-- runs the anon key asked for.)
CREATE OR REPLACE FUNCTION public.opsd_four_eyes(p_op text, r public.runs) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  IF public.opsd_caller_is_user() AND r.created_by IS NOT NULL AND r.created_by = auth.uid() THEN
    RAISE EXCEPTION '%: you created run %; another approver must approve it (four-eyes rule)', p_op, r.id
      USING ERRCODE = 'insufficient_privilege';
  END IF;
END
$$;

-- approve_run lets a run waiting before its action phase go on. Only a
-- listed approver (or an operator through the CLI) may approve, never the
-- user who created the run. It records who approved and when; the daemon
-- writes the System event naming the approver when it sees the approval.
-- Approving an approved run again does nothing and returns false.
CREATE OR REPLACE FUNCTION public.approve_run(p_run_id uuid, p_approver text DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  v_by text := public.opsd_approver('approve_run', p_approver);
  r    public.runs := public.opsd_run_for_approval('approve_run', p_run_id);
BEGIN
  PERFORM public.opsd_four_eyes('approve_run', r);
  -- Nothing to do (already approved, or finished): false, as before.
  IF r.approved_at IS NOT NULL OR r.status NOT IN ('queued', 'running') THEN
    RETURN false;
  END IF;
  UPDATE public.runs x SET approved_by = v_by, approved_at = clock_timestamp() WHERE x.id = p_run_id;
  IF r.status = 'queued' THEN
    PERFORM public.opsd_system_event(p_run_id, 'info', format('approved by %s before it started', v_by), NULL,
      jsonb_build_object('action', 'approved', 'approved_by', v_by));
  END IF;
  RETURN true;
END
$$;

-- reject_run refuses a run waiting for approval (or still queued): it ends
-- canceled, with the reason and who rejected it. Same callers as approve_run.
-- Rejecting a rejected or finished run does nothing and returns false; a run
-- already in its action phase or later is past approval: it is not an
-- approver's to stop (its owner cancels it).
CREATE OR REPLACE FUNCTION public.reject_run(p_run_id uuid, p_reason text, p_approver text DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  v_by text := public.opsd_approver('reject_run', p_approver);
  r    public.runs;
BEGIN
  IF p_reason IS NULL OR btrim(p_reason) = '' THEN
    RAISE EXCEPTION 'reject_run: p_reason must say why the run is rejected' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF EXISTS (SELECT 1 FROM public.runs x WHERE x.id = p_run_id AND x.rejected_at IS NOT NULL) THEN
    RETURN false;
  END IF;
  r := public.opsd_run_for_approval('reject_run', p_run_id);
  IF r.status NOT IN ('queued', 'running') THEN
    RETURN false;
  END IF;
  IF r.approved_at IS NOT NULL THEN
    RAISE EXCEPTION 'reject_run: run % was already approved by %; cancel it instead', p_run_id, r.approved_by
      USING ERRCODE = 'check_violation';
  END IF;
  IF r.status = 'running' AND public.opsd_phase_rank(r.phase) >= public.opsd_phase_rank('action') THEN
    RAISE EXCEPTION 'reject_run: run % is in its % phase, past its approval; only a run that has not reached its action phase can be rejected', p_run_id, r.phase
      USING ERRCODE = 'check_violation', HINT = 'cancel it instead';
  END IF;
  UPDATE public.runs x SET status = 'canceled', rejected_by = v_by, rejected_at = clock_timestamp(),
         error_message = format('rejected by %s: %s', v_by, btrim(p_reason))
   WHERE x.id = p_run_id;
  RETURN true;
END
$$;

-- Guards: a cancel stamps canceled_at with the database's clock, whatever
-- the caller sent; browser callers insert runs only with a priority in
-- 0..1000 and never pre-approved, rejected or leased.
CREATE OR REPLACE FUNCTION public.opsd_runs_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
  IF OLD.status IN ('success', 'error', 'canceled') AND NEW.status IS DISTINCT FROM OLD.status THEN
    RAISE EXCEPTION 'run % is %: a terminal status never changes (attempted %)', OLD.id, OLD.status, NEW.status
      USING ERRCODE = 'check_violation', HINT = 'submit a new run instead';
  END IF;
  IF OLD.finished_at IS NOT NULL AND NEW.finished_at IS DISTINCT FROM OLD.finished_at THEN
    RAISE EXCEPTION 'run % finished at %: finished_at never changes', OLD.id, OLD.finished_at
      USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.attempt < OLD.attempt THEN
    RAISE EXCEPTION 'run %: attempt is the fencing token and never decreases (% -> %)', OLD.id, OLD.attempt, NEW.attempt
      USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.status = 'canceled' AND OLD.status <> 'canceled' THEN
    NEW.canceled_at := clock_timestamp();
    IF OLD.status = 'queued' THEN
      NEW.finished_at := coalesce(NEW.finished_at, clock_timestamp());
    END IF;
  ELSE
    NEW.canceled_at := OLD.canceled_at;
  END IF;
  RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION public.opsd_runs_insert_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
  IF NEW.status <> 'queued' OR NEW.claimed_by IS NOT NULL OR NEW.claimed_at IS NOT NULL
     OR NEW.heartbeat_at IS NOT NULL OR NEW.finished_at IS NOT NULL OR NEW.attempt <> 0 OR NEW.attempts_used <> 0
     OR NEW.lease_expires_at IS NOT NULL OR NEW.canceled_at IS NOT NULL OR NEW.rejected_at IS NOT NULL THEN
    RAISE EXCEPTION 'a new run must be queued and unclaimed (status %, claimed_by %)', NEW.status, NEW.claimed_by
      USING ERRCODE = 'check_violation';
  END IF;
  -- Inline: this trigger runs as the inserting role, which may not execute
  -- opsd_caller_is_user().
  IF coalesce(auth.role(), '') IN ('anon', 'authenticated') OR current_user IN ('anon', 'authenticated') THEN
    IF NEW.priority < 0 OR NEW.priority > 1000 THEN
      RAISE EXCEPTION 'runs.priority must be between 0 and 1000 (lower runs first), got %', NEW.priority
        USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.approved_at IS NOT NULL OR NEW.approved_by IS NOT NULL THEN
      RAISE EXCEPTION 'a new run cannot be approved by its creator; approvers call approve_run'
        USING ERRCODE = 'insufficient_privilege';
    END IF;
  END IF;
  RETURN NEW;
END
$$;

-- Rights. Browser callers insert only the columns the frontend sets (env,
-- kind, plan, intent, session_id, lane, priority: CONTRACT.md): never input,
-- template_id, dry_run or timeout_seconds, which the operator CLI (the
-- service role) sets. And runs only into sessions they can see.
REVOKE INSERT ON public.runs FROM anon, authenticated;
GRANT INSERT (id, env, kind, plan, intent, session_id, lane, priority) ON public.runs TO anon, authenticated;
DROP POLICY IF EXISTS runs_create ON public.runs;
CREATE POLICY runs_create ON public.runs FOR INSERT TO anon, authenticated
  WITH CHECK ((created_by IS NULL OR created_by = auth.uid()) AND status = 'queued' AND claimed_by IS NULL
              AND (session_id IS NULL OR EXISTS (
                     SELECT 1 FROM public.sessions s
                      WHERE s.id = session_id AND (s.created_by IS NULL OR s.created_by = auth.uid()))));

-- The daemon's row writes go through the fenced functions only: the service
-- role keeps reading these tables but no longer writes them directly.
REVOKE INSERT, UPDATE, DELETE ON public.run_events, public.run_steps, public.artifacts FROM service_role;
REVOKE INSERT, DELETE ON public.spec_docs FROM service_role;

ALTER TABLE public.approvers ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.approvers FROM PUBLIC, anon, authenticated;
GRANT ALL ON public.approvers TO service_role;
-- A signed-in user may see whether they are an approver (to show the button).
GRANT SELECT ON public.approvers TO authenticated;
DROP POLICY IF EXISTS approvers_self ON public.approvers;
CREATE POLICY approvers_self ON public.approvers FOR SELECT TO authenticated USING (user_id = auth.uid());

DO $$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN
    SELECT p.oid::regprocedure FROM pg_proc p
     WHERE p.pronamespace = 'public'::regnamespace
       AND p.proname IN ('claim_run', 'claim_runs', 'heartbeat_runs', 'finish_run', 'release_run', 'reap_stale_runs',
                         'approve_run', 'reject_run', 'append_run_rows', 'put_artifact', 'put_spec_doc',
                         'opsd_fenced_write', 'opsd_rows_fence', 'opsd_held_leases', 'opsd_lease_interval',
                         'opsd_approver', 'opsd_run_for_approval', 'opsd_four_eyes', 'opsd_caller_role', 'opsd_caller_is_user', 'opsd_system_event', 'opsd_runs_canceled_event',
                         'opsd_runs_guard', 'opsd_runs_insert_guard')
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, anon, authenticated', f);
  END LOOP;
END
$$;

GRANT EXECUTE ON FUNCTION
  public.claim_run(text, text, int, uuid, int), public.claim_runs(text, int),
  public.heartbeat_runs(text, uuid[], int[], int),
  public.finish_run(uuid, text, int, text, text, jsonb, jsonb), public.release_run(uuid, text, int, text),
  public.reap_stale_runs(), public.approve_run(uuid, text), public.reject_run(uuid, text, text),
  public.append_run_rows(text, jsonb, jsonb, jsonb, jsonb), public.put_artifact(text, uuid, int, text, text, text),
  public.put_spec_doc(text, uuid, int, text, text, text)
TO service_role;
-- anon may call them only to be told, in words the UI can show, that it may not.
GRANT EXECUTE ON FUNCTION public.approve_run(uuid, text), public.reject_run(uuid, text, text) TO anon, authenticated;
GRANT EXECUTE ON FUNCTION public.opsd_runs_guard(), public.opsd_runs_insert_guard() TO anon, authenticated, service_role;
