-- Guards on public.runs that hold whoever writes: the frontend (anon or
-- authenticated through PostgREST), the daemon (service_role) or a person
-- with psql.

-- A terminal status never changes again; a cancel stamps canceled_at, and a
-- queued run that is canceled is finished at once (nobody will run it).
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
  IF NEW.status = 'canceled' AND OLD.status <> 'canceled' THEN
    NEW.canceled_at := coalesce(NEW.canceled_at, clock_timestamp());
    IF OLD.status = 'queued' THEN
      NEW.finished_at := coalesce(NEW.finished_at, clock_timestamp());
    END IF;
  END IF;
  RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS runs_guard ON public.runs;
CREATE TRIGGER runs_guard BEFORE UPDATE ON public.runs
  FOR EACH ROW EXECUTE FUNCTION public.opsd_runs_guard();

-- Inserted runs are always queued and unclaimed, whoever inserts them.
CREATE OR REPLACE FUNCTION public.opsd_runs_insert_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
  IF NEW.status <> 'queued' OR NEW.claimed_by IS NOT NULL OR NEW.claimed_at IS NOT NULL
     OR NEW.heartbeat_at IS NOT NULL OR NEW.finished_at IS NOT NULL OR NEW.attempt <> 0 THEN
    RAISE EXCEPTION 'a new run must be queued and unclaimed (status %, claimed_by %)', NEW.status, NEW.claimed_by
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS runs_insert_guard ON public.runs;
CREATE TRIGGER runs_insert_guard BEFORE INSERT ON public.runs
  FOR EACH ROW EXECUTE FUNCTION public.opsd_runs_insert_guard();

-- Wake daemons that hold a direct connection (LISTEN opsd_wake): on a new
-- or requeued run, and when a session's lane frees up. The payload is the
-- lane; PostgreSQL folds identical notifications of one transaction, so a
-- bulk insert sends at most one per lane.
CREATE OR REPLACE FUNCTION public.opsd_runs_notify() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
  IF NEW.status = 'queued' AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'queued') THEN
    PERFORM pg_notify('opsd_wake', NEW.lane);
  ELSIF TG_OP = 'UPDATE' AND NEW.session_id IS NOT NULL AND NEW.finished_at IS NOT NULL
        AND OLD.finished_at IS NULL AND OLD.claimed_by IS NOT NULL THEN
    PERFORM pg_notify('opsd_wake', NEW.lane);
  END IF;
  RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS runs_notify ON public.runs;
CREATE TRIGGER runs_notify AFTER INSERT OR UPDATE OF status, finished_at ON public.runs
  FOR EACH ROW EXECUTE FUNCTION public.opsd_runs_notify();

-- A queued run canceled by any path (cancel_run, or the frontend's plain
-- UPDATE) gets a System event saying so; nobody else will write one. It runs
-- as the owner because the browser roles may not write events.
CREATE OR REPLACE FUNCTION public.opsd_runs_canceled_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  INSERT INTO public.run_events (run_id, seq, level, source, message, data)
  SELECT NEW.id, coalesce(max(seq), 0) + 1, 'warn', 'System', 'run canceled before it started',
         jsonb_build_object('action', 'canceled')
    FROM public.run_events WHERE run_id = NEW.id
  ON CONFLICT (run_id, seq) DO NOTHING;
  RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS runs_canceled_event ON public.runs;
CREATE TRIGGER runs_canceled_event AFTER UPDATE OF status ON public.runs
  FOR EACH ROW WHEN (OLD.status = 'queued' AND NEW.status = 'canceled')
  EXECUTE FUNCTION public.opsd_runs_canceled_event();
