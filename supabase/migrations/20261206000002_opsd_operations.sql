-- Operations: schedules, retry, retention and an audit trail (issue 13).
-- Database-first: the frontend reaches all of it through PostgREST and
-- Realtime, the daemon and the CLI call the same functions. Additive only.

-- ---------------------------------------------------------------- columns

CREATE TABLE IF NOT EXISTS public.run_schedules (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name        text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
  -- At most 128 characters: the validator below refuses longer ones first,
  -- naming the limit, so no write or enqueue pass parses a huge expression.
  cron        text NOT NULL CONSTRAINT run_schedules_cron_check CHECK (length(cron) <= 128),
  timezone    text NOT NULL DEFAULT 'UTC',
  env         text NOT NULL CHECK (env IN ('prod', 'staging', 'dev')),
  kind        text NOT NULL CHECK (kind IN ('deploy', 'healthcheck', 'spec', 'incident', 'schema_sync')),
  template_id uuid NULL,
  input       jsonb NOT NULL DEFAULT '{}'::jsonb,
  plan        jsonb NULL,
  -- A lane name, as on runs (runs_lane_guard below).
  lane        text NOT NULL DEFAULT 'A' CONSTRAINT run_schedules_lane_check CHECK (lane ~ '^[A-Za-z0-9_-]{1,32}$'),
  session_id  uuid NULL REFERENCES public.sessions (id) ON DELETE SET NULL,
  enabled     boolean NOT NULL DEFAULT true,
  -- What a tick does while the schedule's previous run is still queued or
  -- running: skip it (the default) or queue another run.
  overlap     text NOT NULL DEFAULT 'skip' CHECK (overlap IN ('skip', 'queue')),
  next_run_at timestamptz NULL,
  last_run_at timestamptz NULL,
  created_by  uuid NULL DEFAULT auth.uid(),
  -- Who created or changed the schedule (opsd_actor: a user id, 'anon',
  -- operator:NAME), kept by the guard trigger whoever writes, so four-eyes
  -- knows who asked for each run it makes whatever the audit's retention.
  written_by  text[] NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS run_schedules_due_idx ON public.run_schedules (next_run_at) WHERE enabled;

ALTER TABLE public.runs
  ADD COLUMN IF NOT EXISTS retry_of      uuid NULL REFERENCES public.runs (id) ON DELETE SET NULL,
  ADD COLUMN IF NOT EXISTS canceled_by   text NULL,
  ADD COLUMN IF NOT EXISTS rejected_by   text NULL,
  ADD COLUMN IF NOT EXISTS rejected_at   timestamptz NULL,
  ADD COLUMN IF NOT EXISTS schedule_id   uuid NULL REFERENCES public.run_schedules (id) ON DELETE SET NULL,
  ADD COLUMN IF NOT EXISTS scheduled_for timestamptz NULL;
CREATE INDEX IF NOT EXISTS runs_retry_of_idx ON public.runs (retry_of) WHERE retry_of IS NOT NULL;
-- Two daemons never enqueue the same tick of a schedule.
CREATE UNIQUE INDEX IF NOT EXISTS runs_schedule_tick_key ON public.runs (schedule_id, scheduled_for);
CREATE INDEX IF NOT EXISTS runs_finished_at_idx ON public.runs (finished_at) WHERE finished_at IS NOT NULL;

-- A lane is a name: 1 to 32 letters, digits, _ or - (the UI's lanes are A,
-- B, C and D). It is the payload of the opsd_wake NOTIFY, which refuses
-- 8000 bytes and more, so a long lane made every insert of its run fail,
-- and a scheduled one every enqueue pass. A trigger on the inserted or
-- changed lane, not a CHECK: a CHECK is tested on every UPDATE of a row, so
-- one unfinished run written before this migration with another lane would
-- fail every claim, heartbeat, finish and reap that touches it (and a reap
-- pass with it). The trigger's WHEN costs one regular expression match; the
-- function runs only for a bad lane.
CREATE OR REPLACE FUNCTION public.opsd_runs_lane_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
  RAISE EXCEPTION 'runs.lane % (% characters) is not a lane name: use 1 to 32 letters, digits, _ or - (the UI shows lanes A, B, C and D)',
    quote_literal(left(NEW.lane, 40)), length(NEW.lane) USING ERRCODE = 'check_violation';
END
$$;

DROP TRIGGER IF EXISTS runs_lane_guard ON public.runs;
CREATE TRIGGER runs_lane_guard BEFORE INSERT OR UPDATE OF lane ON public.runs
  FOR EACH ROW WHEN (NEW.lane !~ '^[A-Za-z0-9_-]{1,32}$')
  EXECUTE FUNCTION public.opsd_runs_lane_guard();

-- Written only by triggers and SQL functions (SECURITY DEFINER), never by
-- the daemon, so nothing escapes it. Nobody but the owner may change it.
CREATE TABLE IF NOT EXISTS public.audit_log (
  id          bigserial PRIMARY KEY,
  at          timestamptz NOT NULL DEFAULT clock_timestamp(),
  action      text NOT NULL,
  actor       text NOT NULL,
  run_id      uuid NULL,
  schedule_id uuid NULL,
  details     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS audit_log_at_idx ON public.audit_log (at, id);
CREATE INDEX IF NOT EXISTS audit_log_run_idx ON public.audit_log (run_id) WHERE run_id IS NOT NULL;

-- Leases of daemon-wide maintenance work (the pruner), so two daemons do
-- not both work at once.
CREATE TABLE IF NOT EXISTS public.opsd_leases (
  name   text PRIMARY KEY,
  holder text NOT NULL,
  until  timestamptz NOT NULL
);

-- ------------------------------------------------------------------ actor

-- Who is acting: the browser user's uid (or 'anon'), else what the caller
-- put in the transaction-local setting opsd.actor ('operator:' and the
-- CLI's --as, as approve_run records operators), else
-- 'service_role' or the database user of a direct connection.
CREATE OR REPLACE FUNCTION public.opsd_actor() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT CASE
    WHEN coalesce(auth.role(), '') IN ('anon', 'authenticated') THEN coalesce(auth.uid()::text, 'anon')
    ELSE coalesce(nullif(current_setting('opsd.actor', true), ''),
                  CASE WHEN auth.role() = 'service_role' THEN 'service_role' ELSE 'db:' || session_user END)
  END
$$;

CREATE OR REPLACE FUNCTION public.opsd_audit_write(p_action text, p_actor text, p_run uuid, p_schedule uuid,
                                                   p_details jsonb) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  INSERT INTO public.audit_log (action, actor, run_id, schedule_id, details)
  VALUES (p_action, coalesce(p_actor, public.opsd_actor()), p_run, p_schedule, coalesce(p_details, '{}'::jsonb))
$$;

-- ------------------------------------------------------------------- cron

-- One field of a 5-field cron expression as the sorted values it allows.
-- p_pos is the field's position in the whole expression, for errors. Only
-- opsd_cron_parse calls it, with fields of an expression of at most 128
-- characters.
CREATE OR REPLACE FUNCTION public.opsd_cron_field(p_expr text, p_field text, p_name text, p_pos int,
                                                  p_min int, p_max int, p_names text[]) RETURNS int[]
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, public AS $$
DECLARE
  v_out int[] := '{}';
  v_item text;
  v_off int := 0;
  v_m text[];
  v_lo int;
  v_hi int;
  v_step int;
  v_where text;
  v_quoted text := quote_literal(p_expr);
  -- Day of week accepts 7 (Sunday) beside 0.
  v_top int := CASE WHEN p_name = 'day-of-week' THEN 7 ELSE p_max END;
BEGIN
  IF length(p_field) > 128 THEN
    RAISE EXCEPTION 'cron %...: % field at position % is % characters long: the limit is 128',
      quote_literal(left(p_expr, 40)), p_name, p_pos, length(p_field) USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOREACH v_item IN ARRAY string_to_array(p_field, ',') LOOP
    v_where := format('cron %s: %s field %L at position %s', v_quoted, p_name, v_item, p_pos + v_off);
    v_m := regexp_match(lower(v_item), '^(\*|[0-9a-z]+)(?:-([0-9a-z]+))?(?:/([0-9]+))?$');
    IF v_m IS NULL THEN
      RAISE EXCEPTION '%: expected *, a value, a range a-b, a list a,b or a step */n', v_where
        USING ERRCODE = 'invalid_parameter_value', HINT = 'use 5 fields (minute hour day-of-month month day-of-week) or @every <duration>';
    END IF;
    IF v_m[1] = '*' THEN
      IF v_m[2] IS NOT NULL THEN
        RAISE EXCEPTION '%: * cannot start a range', v_where USING ERRCODE = 'invalid_parameter_value';
      END IF;
      v_lo := p_min; v_hi := p_max;
    ELSE
      FOR i IN 1..2 LOOP
        CONTINUE WHEN v_m[i] IS NULL;
        IF v_m[i] ~ '^[0-9]+$' AND length(v_m[i]) <= 4 THEN
          v_hi := v_m[i]::int;
        ELSIF p_names IS NOT NULL AND array_position(p_names, v_m[i]) IS NOT NULL THEN
          v_hi := array_position(p_names, v_m[i]) - 1 + p_min;
        ELSE
          RAISE EXCEPTION '%: % is not a number%', v_where, v_m[i],
            CASE WHEN p_names IS NULL THEN '' ELSE ' or a name (' || array_to_string(p_names, ' ') || ')' END
            USING ERRCODE = 'invalid_parameter_value';
        END IF;
        -- Day of week 7 is Sunday, as in most crons.
        IF p_name = 'day-of-week' AND v_hi = 7 THEN
          v_hi := CASE WHEN i = 1 AND v_m[2] IS NULL THEN 0 ELSE 7 END;
        END IF;
        IF v_hi < p_min OR v_hi > v_top THEN
          RAISE EXCEPTION '%: % is out of range %-%', v_where, v_m[i], p_min, p_max USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF i = 1 THEN v_lo := v_hi; END IF;
      END LOOP;
      IF v_m[2] IS NULL THEN
        v_hi := CASE WHEN v_m[3] IS NOT NULL THEN p_max ELSE v_lo END;
      END IF;
      IF v_lo > v_hi THEN
        RAISE EXCEPTION '%: range %-% runs backwards', v_where, v_lo, v_hi USING ERRCODE = 'invalid_parameter_value';
      END IF;
    END IF;
    v_step := coalesce(v_m[3]::int, 1);
    IF v_step < 1 OR v_step > p_max - p_min + 1 THEN
      RAISE EXCEPTION '%: step % is out of range 1-%', v_where, v_step, p_max - p_min + 1 USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR v IN v_lo..v_hi BY v_step LOOP
      v_out := v_out || CASE WHEN p_name = 'day-of-week' AND v = 7 THEN 0 ELSE v END;
    END LOOP;
    v_off := v_off + length(v_item) + 1;
  END LOOP;
  RETURN ARRAY(SELECT DISTINCT x FROM unnest(v_out) x ORDER BY x);
END
$$;

-- opsd_cron_parse validates a schedule expression and returns it parsed:
-- {"every": seconds} for @every <duration> (at least 1 s), else the allowed
-- values of each of the 5 fields. Errors name the field and the position.
-- An expression is at most 128 characters (run_schedules_cron_check): a
-- longer one is refused before any parsing, so parsing stays cheap.
CREATE OR REPLACE FUNCTION public.opsd_cron_parse(p_expr text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, public AS $$
DECLARE
  v_expr text := btrim(coalesce(p_expr, ''));
  v_secs numeric;
  v_fields text[];
  v_pos int[] := '{}';
  v_names text[] := ARRAY['minute', 'hour', 'day-of-month', 'month', 'day-of-week'];
  v_min int[] := ARRAY[0, 0, 1, 1, 0];
  v_max int[] := ARRAY[59, 23, 31, 12, 6];
  v_out jsonb := '{}';
  v_off int;
BEGIN
  IF length(p_expr) > 128 THEN
    RAISE EXCEPTION 'cron %... is % characters long: the limit is 128', quote_literal(left(p_expr, 40)), length(p_expr)
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'use 5 fields (minute hour day-of-month month day-of-week), ranges and steps (1-31/2) rather than long lists, or @every <duration>';
  END IF;
  IF lower(v_expr) LIKE '@every%' THEN
    BEGIN
      v_secs := extract(epoch FROM btrim(substr(v_expr, 7))::interval);
    EXCEPTION WHEN others THEN
      RAISE EXCEPTION 'cron %: duration % at position 8 is not a duration (e.g. 30s, 5m, 1h30m)', quote_literal(p_expr), quote_literal(btrim(substr(v_expr, 7)))
        USING ERRCODE = 'invalid_parameter_value';
    END;
    IF btrim(substr(v_expr, 7)) = '' OR v_secs IS NULL OR v_secs < 1 THEN
      RAISE EXCEPTION 'cron %: @every needs a duration of at least 1s (position 8)', quote_literal(p_expr) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN jsonb_build_object('every', floor(v_secs)::bigint);
  END IF;
  v_expr := CASE lower(v_expr)
    WHEN '@hourly' THEN '0 * * * *' WHEN '@daily' THEN '0 0 * * *' WHEN '@midnight' THEN '0 0 * * *'
    WHEN '@weekly' THEN '0 0 * * 0' WHEN '@monthly' THEN '0 0 1 * *' WHEN '@yearly' THEN '0 0 1 1 *'
    WHEN '@annually' THEN '0 0 1 1 *' ELSE v_expr END;
  IF v_expr LIKE '@%' THEN
    RAISE EXCEPTION 'cron %: unknown macro at position 1 (use @every <duration>, @hourly, @daily, @weekly, @monthly or @yearly)', quote_literal(p_expr)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Fields and where each starts (1-based), for error positions.
  SELECT array_agg(m[1] ORDER BY n), array_agg(0 ORDER BY n) INTO v_fields, v_pos
    FROM regexp_matches(v_expr, '(\S+)', 'g') WITH ORDINALITY AS t(m, n);
  IF coalesce(array_length(v_fields, 1), 0) <> 5 THEN
    RAISE EXCEPTION 'cron %: has % fields, want 5 (minute hour day-of-month month day-of-week) or @every <duration>',
      quote_literal(p_expr), coalesce(array_length(v_fields, 1), 0) USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_off := 1;
  FOR i IN 1..5 LOOP
    v_pos[i] := strpos(substr(v_expr, v_off), v_fields[i]) + v_off - 1;
    v_off := v_pos[i] + length(v_fields[i]);
    v_out := v_out || jsonb_build_object(v_names[i], to_jsonb(public.opsd_cron_field(
      p_expr, v_fields[i], v_names[i], v_pos[i], v_min[i], v_max[i],
      CASE i WHEN 4 THEN ARRAY['jan','feb','mar','apr','may','jun','jul','aug','sep','oct','nov','dec']
             WHEN 5 THEN ARRAY['sun','mon','tue','wed','thu','fri','sat'] END)));
  END LOOP;
  -- Standard cron: when both day fields are restricted, either may match.
  RETURN v_out || jsonb_build_object('dom_any', v_fields[3] ~ '^\*', 'dow_any', v_fields[5] ~ '^\*');
END
$$;

-- The first fire time of a parsed expression strictly after p_after, in
-- time zone p_tz, or NULL when there is none within eight years: the
-- longest gap between two fire times of an expression whose days exist
-- (29 February: 2096, then 2104). The search is bounded by that window, not
-- by the expression: a step is a month that does not match, a day that
-- does not match, or a jump to the next allowed hour or minute, so eight
-- years take at most about 3,000 steps (0 0 30 2 *, which never fires,
-- takes about 330).
CREATE OR REPLACE FUNCTION public.opsd_cron_next_parsed(p_spec jsonb, p_tz text, p_after timestamptz) RETURNS timestamptz
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, public AS $$
DECLARE
  v_t timestamp;
  v_end timestamp;
  v_min int[];
  v_hour int[];
  v_dom int[];
  v_mon int[];
  v_dow int[];
  -- Standard cron: when either day field is *, both must match; when both
  -- are restricted, either may.
  v_both boolean := (p_spec ->> 'dom_any')::boolean OR (p_spec ->> 'dow_any')::boolean;
  v_dom_ok boolean;
  v_dow_ok boolean;
  v_cur int;
  v_x int;
  v_next int;
BEGIN
  IF p_spec ? 'every' THEN
    RETURN to_timestamp((floor(extract(epoch FROM p_after) / (p_spec ->> 'every')::bigint) + 1) * (p_spec ->> 'every')::bigint);
  END IF;
  SELECT array_agg(x::int ORDER BY x::int) INTO v_min FROM jsonb_array_elements_text(p_spec -> 'minute') x;
  SELECT array_agg(x::int ORDER BY x::int) INTO v_hour FROM jsonb_array_elements_text(p_spec -> 'hour') x;
  SELECT array_agg(x::int) INTO v_dom FROM jsonb_array_elements_text(p_spec -> 'day-of-month') x;
  SELECT array_agg(x::int) INTO v_mon FROM jsonb_array_elements_text(p_spec -> 'month') x;
  SELECT array_agg(x::int) INTO v_dow FROM jsonb_array_elements_text(p_spec -> 'day-of-week') x;
  v_t := date_trunc('minute', p_after AT TIME ZONE p_tz) + interval '1 minute';
  v_end := v_t + interval '8 years';
  WHILE v_t < v_end LOOP
    IF NOT (extract(month FROM v_t)::int = ANY (v_mon)) THEN
      v_t := date_trunc('month', v_t) + interval '1 month';
      CONTINUE;
    END IF;
    v_dom_ok := extract(day FROM v_t)::int = ANY (v_dom);
    v_dow_ok := extract(dow FROM v_t)::int = ANY (v_dow);
    IF (v_both AND NOT (v_dom_ok AND v_dow_ok)) OR (NOT v_both AND NOT (v_dom_ok OR v_dow_ok)) THEN
      v_t := date_trunc('day', v_t) + interval '1 day';
      CONTINUE;
    END IF;
    -- A day that matches: the first allowed hour from this one, else the
    -- next day.
    v_cur := extract(hour FROM v_t)::int;
    v_next := NULL;
    FOREACH v_x IN ARRAY v_hour LOOP
      IF v_x >= v_cur THEN
        v_next := v_x;
        EXIT;
      END IF;
    END LOOP;
    IF v_next IS NULL THEN
      v_t := date_trunc('day', v_t) + interval '1 day';
      CONTINUE;
    ELSIF v_next > v_cur THEN
      v_t := date_trunc('day', v_t) + make_interval(hours => v_next);
    END IF;
    -- An hour that matches: the first allowed minute from this one, else
    -- the next hour.
    v_cur := extract(minute FROM v_t)::int;
    v_next := NULL;
    FOREACH v_x IN ARRAY v_min LOOP
      IF v_x >= v_cur THEN
        v_next := v_x;
        EXIT;
      END IF;
    END LOOP;
    IF v_next IS NULL THEN
      v_t := date_trunc('hour', v_t) + interval '1 hour';
      CONTINUE;
    END IF;
    RETURN (date_trunc('hour', v_t) + make_interval(mins => v_next)) AT TIME ZONE p_tz;
  END LOOP;
  RETURN NULL;
END
$$;

-- opsd_cron_next is the one source of next fire times, for the schedules
-- trigger and anyone who shows them (the frontend may call it: it is
-- bounded like the functions it calls, which it runs as their owner, so
-- browsers cannot call those directly). An expression with no fire time
-- within eight years after p_after is an error, which names it.
CREATE OR REPLACE FUNCTION public.opsd_cron_next(p_expr text, p_tz text DEFAULT 'UTC', p_after timestamptz DEFAULT now())
RETURNS timestamptz
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  v_next timestamptz;
BEGIN
  -- Checked by using it, not by scanning pg_timezone_names (tens of ms a
  -- call, and anyone may call this function).
  IF p_tz IS NULL OR length(p_tz) > 64 THEN
    RAISE EXCEPTION 'timezone % is not a known time zone (e.g. UTC, Europe/Paris)', quote_literal(left(p_tz, 64)) USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_tz <> 'UTC' THEN
    BEGIN
      PERFORM p_after AT TIME ZONE p_tz;
    EXCEPTION WHEN invalid_parameter_value OR feature_not_supported THEN
      RAISE EXCEPTION 'timezone % is not a known time zone (e.g. UTC, Europe/Paris)', quote_literal(p_tz) USING ERRCODE = 'invalid_parameter_value';
    END;
  END IF;
  v_next := public.opsd_cron_next_parsed(public.opsd_cron_parse(p_expr), p_tz, p_after);
  IF v_next IS NULL THEN
    RAISE EXCEPTION 'cron %: never fires within eight years after % (a day that no month has, such as 30 February?)',
      quote_literal(p_expr), p_after USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN v_next;
END
$$;

-- Validates a schedule on every write (PostgREST writes too) and keeps
-- next_run_at: computed on create, on a cron or timezone change and on
-- resume; NULL while paused. The lane is checked here too, before
-- run_schedules_lane_check, for an error that says what a lane is.
CREATE OR REPLACE FUNCTION public.opsd_schedules_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
  IF (TG_OP = 'INSERT' OR NEW.lane IS DISTINCT FROM OLD.lane) AND NEW.lane !~ '^[A-Za-z0-9_-]{1,32}$' THEN
    RAISE EXCEPTION 'schedule %: lane % (% characters) is not a lane name: use 1 to 32 letters, digits, _ or - (the UI shows lanes A, B, C and D)',
      quote_literal(left(NEW.name, 63)), quote_literal(left(NEW.lane, 40)), length(NEW.lane) USING ERRCODE = 'check_violation';
  END IF;
  IF TG_OP = 'INSERT' OR NEW.cron IS DISTINCT FROM OLD.cron OR NEW.timezone IS DISTINCT FROM OLD.timezone
     OR NEW.enabled IS DISTINCT FROM OLD.enabled THEN
    -- Validated even while paused: a bad expression never gets stored.
    NEW.next_run_at := public.opsd_cron_next(NEW.cron, NEW.timezone, now());
    IF NOT NEW.enabled THEN
      NEW.next_run_at := NULL;
    END IF;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    NEW.updated_at := now();
  END IF;
  -- written_by is the guard's alone: each writer of what the schedule does
  -- is added (the enqueuer's next_run_at/last_run_at bookkeeping is not).
  IF TG_OP = 'INSERT' THEN
    NEW.written_by := ARRAY[public.opsd_actor()];
  ELSE
    NEW.written_by := OLD.written_by;
    IF (to_jsonb(NEW) - ARRAY['next_run_at', 'last_run_at', 'updated_at', 'written_by'])
       IS DISTINCT FROM (to_jsonb(OLD) - ARRAY['next_run_at', 'last_run_at', 'updated_at', 'written_by'])
       AND NOT public.opsd_actor() = ANY (OLD.written_by) THEN
      NEW.written_by := OLD.written_by || public.opsd_actor();
    END IF;
  END IF;
  RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS run_schedules_guard ON public.run_schedules;
CREATE TRIGGER run_schedules_guard BEFORE INSERT OR UPDATE ON public.run_schedules
  FOR EACH ROW EXECUTE FUNCTION public.opsd_schedules_guard();

-- opsd_enqueue_due_schedules enqueues one run per due schedule: an ordinary
-- queued run with schedule_id and scheduled_for set. Any daemon may call it:
-- schedules are taken with SKIP LOCKED and the unique (schedule_id,
-- scheduled_for) index drops a tick enqueued twice. Ticks missed while no
-- daemon ran are enqueued once (the latest), with a System event counting
-- the skipped ones. With overlap 'skip', a tick whose previous run is still
-- queued or running is skipped (and audited).
-- Each schedule is handled in a subtransaction of its own, so one that
-- fails (any error: a run the runs table refuses, a trigger, a bad row)
-- never holds the others back. Its tick is dropped, not retried: the
-- failure is in the audit trail (schedule.failed, with the error), and its
-- next_run_at moves to its first tick at least a minute from now (an hour
-- from now if even that cannot be computed), so a schedule that keeps
-- failing is tried, and audited, at most once a minute instead of on every
-- pass. A schedule whose next fire time lies beyond the eight years
-- opsd_cron_next_parsed searches has its tick enqueued and next_run_at
-- cleared (audited too) until its cron is changed or it is resumed.
-- A call takes at most 50 schedules (the daemon asks for 50 every second):
-- PostgreSQL keeps 64 subtransactions of a transaction in shared memory,
-- past which every other session's snapshots get slower while it runs.
CREATE OR REPLACE FUNCTION public.opsd_enqueue_due_schedules(p_limit int DEFAULT 20) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  s public.run_schedules;
  v_spec jsonb;
  v_tick timestamptz;
  v_next timestamptz;
  v_missed bigint;
  v_run uuid;
  v_now timestamptz := clock_timestamp();
  v_enqueued int := 0;
  v_skipped int := 0;
  v_failed int := 0;
  v_err text;
  v_state text;
BEGIN
  PERFORM set_config('opsd.system_write', 'on', true);
  FOR s IN
    SELECT * FROM public.run_schedules x
     WHERE x.enabled AND x.next_run_at <= v_now
     ORDER BY x.next_run_at
     LIMIT least(greatest(p_limit, 1), 50)
     FOR UPDATE SKIP LOCKED
  LOOP
    BEGIN
      v_spec := public.opsd_cron_parse(s.cron);
      -- The latest due tick, and how many earlier ones were missed.
      IF v_spec ? 'every' THEN
        v_tick := to_timestamp(floor(extract(epoch FROM v_now) / (v_spec ->> 'every')::bigint) * (v_spec ->> 'every')::bigint);
        v_tick := greatest(v_tick, s.next_run_at);
        v_missed := floor(extract(epoch FROM v_tick - s.next_run_at) / (v_spec ->> 'every')::bigint);
        v_next := public.opsd_cron_next_parsed(v_spec, s.timezone, greatest(v_tick, v_now));
      ELSE
        v_tick := s.next_run_at;
        v_missed := 0;
        LOOP
          v_next := public.opsd_cron_next_parsed(v_spec, s.timezone, v_tick);
          EXIT WHEN v_next IS NULL OR v_next > v_now OR v_missed >= 100000;
          v_tick := v_next;
          v_missed := v_missed + 1;
        END LOOP;
        -- NULL: no tick within eight years of the last one; there may be
        -- one within eight years of now.
        IF v_next IS NULL OR v_next <= v_now THEN
          v_next := public.opsd_cron_next_parsed(v_spec, s.timezone, v_now);
        END IF;
      END IF;

      UPDATE public.run_schedules SET next_run_at = v_next, last_run_at = v_tick WHERE id = s.id;
      IF v_next IS NULL THEN
        PERFORM public.opsd_audit_write('schedule.failed', 'schedule:' || s.name, NULL, s.id,
          jsonb_build_object('scheduled_for', v_tick, 'next_run_at', NULL,
            'error', format('cron %L has no fire time within eight years after %s: next_run_at is cleared until the cron is changed or the schedule is paused and resumed',
                            s.cron, v_now)));
      END IF;

      IF s.overlap = 'skip' AND EXISTS (SELECT 1 FROM public.runs r WHERE r.schedule_id = s.id
                                           AND (r.status IN ('queued', 'running') OR r.finished_at IS NULL)) THEN
        PERFORM public.opsd_audit_write('schedule.skipped', 'schedule:' || s.name, NULL, s.id,
          jsonb_build_object('scheduled_for', v_tick, 'missed', v_missed, 'reason', 'previous run still queued or running'));
        v_skipped := v_skipped + 1;
        CONTINUE;
      END IF;

      PERFORM set_config('opsd.actor', 'schedule:' || s.name, true);
      INSERT INTO public.runs (env, kind, plan, intent, template_id, input, session_id, lane, created_by,
                               schedule_id, scheduled_for)
      VALUES (s.env, s.kind, s.plan, coalesce(s.plan ->> 'title', 'schedule ' || s.name), s.template_id, s.input,
              s.session_id, s.lane, s.created_by, s.id, v_tick)
      ON CONFLICT (schedule_id, scheduled_for) DO NOTHING
      RETURNING id INTO v_run;
      PERFORM set_config('opsd.actor', '', true);
      IF v_run IS NULL THEN
        CONTINUE;
      END IF;
      v_enqueued := v_enqueued + 1;
      IF v_missed > 0 THEN
        PERFORM public.opsd_system_event(v_run, 'warn',
          format('schedule %s: %s tick(s) missed while no daemon was running were skipped; this run catches up once', s.name, v_missed),
          NULL, jsonb_build_object('schedule', s.name, 'skipped_ticks', v_missed, 'scheduled_for', v_tick));
      END IF;
    EXCEPTION WHEN OTHERS THEN
      -- Everything this schedule did in this pass is rolled back.
      GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
      v_failed := v_failed + 1;
      BEGIN
        BEGIN
          v_next := public.opsd_cron_next_parsed(public.opsd_cron_parse(s.cron), s.timezone, v_now + interval '1 minute');
        EXCEPTION WHEN OTHERS THEN
          v_next := NULL;
        END;
        v_next := coalesce(v_next, v_now + interval '1 hour');
        UPDATE public.run_schedules SET next_run_at = v_next WHERE id = s.id;
        PERFORM public.opsd_audit_write('schedule.failed', 'schedule:' || s.name, NULL, s.id,
          jsonb_build_object('scheduled_for', s.next_run_at, 'next_run_at', v_next,
                             'error', left(v_err, 1000), 'sqlstate', v_state));
      EXCEPTION WHEN OTHERS THEN
        -- Not even that could be written: the schedule stays due and is
        -- tried again on the next pass; the others still go.
        RAISE WARNING 'opsd_enqueue_due_schedules: schedule % failed (%), and so did recording it: %',
          s.name, left(v_err, 200), left(SQLERRM, 200);
      END;
    END;
  END LOOP;
  RETURN jsonb_build_object('enqueued', v_enqueued, 'skipped', v_skipped, 'failed', v_failed);
END
$$;

-- -------------------------------------------------------------- audit trail

-- A cancel (not a rejection) records who canceled, whichever path set it:
-- cancel_run, the frontend's plain UPDATE, or the daemon.
CREATE OR REPLACE FUNCTION public.opsd_runs_canceled_by() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
  IF NEW.rejected_by IS NULL AND NEW.rejected_at IS NULL THEN
    NEW.canceled_by := coalesce(NEW.canceled_by, public.opsd_actor());
  END IF;
  RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS runs_canceled_by ON public.runs;
CREATE TRIGGER runs_canceled_by BEFORE UPDATE OF status ON public.runs
  FOR EACH ROW WHEN (NEW.status = 'canceled' AND OLD.status IS DISTINCT FROM 'canceled')
  EXECUTE FUNCTION public.opsd_runs_canceled_by();

-- Audits runs from the rows themselves, so it holds whichever function or
-- UPDATE set them: created (or scheduled, or retried), approved, rejected,
-- canceled.
CREATE OR REPLACE FUNCTION public.opsd_runs_audit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.retry_of IS NOT NULL THEN
      PERFORM public.opsd_audit_write('retried', NULL, NEW.id, NEW.schedule_id,
        jsonb_build_object('retry_of', NEW.retry_of, 'env', NEW.env, 'kind', NEW.kind));
    ELSIF NEW.schedule_id IS NOT NULL THEN
      PERFORM public.opsd_audit_write('scheduled', NULL, NEW.id, NEW.schedule_id,
        jsonb_build_object('scheduled_for', NEW.scheduled_for, 'env', NEW.env, 'kind', NEW.kind,
                           'writers', (SELECT to_jsonb(s.written_by) FROM public.run_schedules s WHERE s.id = NEW.schedule_id)));
    ELSE
      PERFORM public.opsd_audit_write('created', coalesce(NEW.created_by::text, public.opsd_actor()), NEW.id, NULL,
        jsonb_build_object('env', NEW.env, 'kind', NEW.kind, 'lane', NEW.lane));
    END IF;
    RETURN NULL;
  END IF;
  IF NEW.approved_at IS NOT NULL AND OLD.approved_at IS NULL THEN
    PERFORM public.opsd_audit_write('approved', coalesce(NEW.approved_by, public.opsd_actor()), NEW.id, NULL, '{}');
  END IF;
  IF NEW.rejected_at IS NOT NULL AND OLD.rejected_at IS NULL THEN
    PERFORM public.opsd_audit_write('rejected', coalesce(NEW.rejected_by, public.opsd_actor()), NEW.id, NULL,
      jsonb_build_object('reason', NEW.error_message));
  ELSIF NEW.status = 'canceled' AND OLD.status IS DISTINCT FROM 'canceled' THEN
    PERFORM public.opsd_audit_write('canceled', coalesce(NEW.canceled_by, public.opsd_actor()), NEW.id, NULL,
      jsonb_build_object('was', OLD.status));
  END IF;
  RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS runs_audit_insert ON public.runs;
CREATE TRIGGER runs_audit_insert AFTER INSERT ON public.runs
  FOR EACH ROW EXECUTE FUNCTION public.opsd_runs_audit();
DROP TRIGGER IF EXISTS runs_audit_update ON public.runs;
CREATE TRIGGER runs_audit_update AFTER UPDATE OF status, approved_at, rejected_at ON public.runs
  FOR EACH ROW WHEN (OLD.approved_at IS DISTINCT FROM NEW.approved_at OR OLD.rejected_at IS DISTINCT FROM NEW.rejected_at
                     OR (NEW.status = 'canceled' AND OLD.status IS DISTINCT FROM 'canceled'))
  EXECUTE FUNCTION public.opsd_runs_audit();

-- Four-eyes with the audit trail: a browser approver may not approve a run
-- they asked for, nor one whose requester is unknown. Who asked for a run is
-- its creator, else the actor of its 'created' or 'retried' entry; for a
-- scheduled run, everyone who wrote its schedule up to the tick (the
-- schedule's written_by, copied into the run's 'scheduled' entry, so neither
-- deleting the schedule nor pruning its entries forgets them); a retry was
-- asked for by whoever asked for the run it copies too, so the chain of
-- retry_of is walked. Unknown is the anon key (actor 'anon': the approver
-- may have sent it themselves), no entry at all, or a retried run no longer
-- on record; operators approve those (opsd approve --as NAME). Entries
-- older than a run are another run's with the same id.
CREATE OR REPLACE FUNCTION public.opsd_four_eyes(p_op text, r public.runs) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  e         record;
  x         public.runs := r;
  v_me      text := auth.uid()::text;
  v_writers jsonb;
  v_unknown text;
  v_hops    int := 0;
BEGIN
  IF NOT public.opsd_caller_is_user() THEN
    RETURN;
  END IF;
  LOOP
    IF x.created_by IS NOT NULL AND x.created_by = auth.uid() THEN
      RAISE EXCEPTION '%: you created run %; another approver must approve it (four-eyes rule)', p_op,
        r.id || CASE WHEN x.id <> r.id THEN ' (it retries your run ' || x.id || ')' ELSE '' END
        USING ERRCODE = 'insufficient_privilege';
    END IF;
    e := NULL;
    v_unknown := NULL;
    SELECT a.actor, a.action, a.details INTO e FROM public.audit_log a
     WHERE a.run_id = x.id AND a.action IN ('created', 'retried', 'scheduled') AND a.at >= x.created_at
     ORDER BY a.at, a.id LIMIT 1;
    IF e.action = 'scheduled' THEN
      v_writers := e.details -> 'writers';
      IF v_writers ? v_me THEN
        RAISE EXCEPTION '%: you wrote the schedule that made run %; another approver must approve it (four-eyes rule)', p_op, x.id
          USING ERRCODE = 'insufficient_privilege';
      END IF;
      IF v_writers IS NULL OR jsonb_typeof(v_writers) <> 'array' OR v_writers ? 'anon' THEN
        v_unknown := 'made by a schedule the anon key wrote (or whose writers are not on record)';
      END IF;
    ELSIF e.action = 'retried' AND x.retry_of IS NULL THEN
      v_unknown := 'a retry of a run that is no longer on record';
    END IF;
    IF x.created_by IS NULL AND v_unknown IS NULL AND (e.actor IS NULL OR e.actor = 'anon') THEN
      v_unknown := CASE WHEN e.actor IS NULL THEN 'made with no creator on record' ELSE 'made with the anon key' END;
    END IF;
    IF v_unknown IS NOT NULL THEN
      RAISE EXCEPTION '%: run % was %, so who asked for it is unknown and the four-eyes rule cannot be checked', p_op, x.id, v_unknown
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'an operator approves it with: opsd approve --as NAME; or a signed-in user submits it again';
    END IF;
    EXIT WHEN x.retry_of IS NULL;
    v_hops := v_hops + 1;
    IF v_hops > 100 THEN
      RAISE EXCEPTION '%: run % retries a chain of more than 100 runs; an operator must approve it', p_op, r.id
        USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT * INTO x FROM public.runs WHERE id = x.retry_of;
    EXIT WHEN NOT FOUND;
  END LOOP;
END
$$;

-- Audits schedule changes made by anyone (CLI, frontend, psql); the
-- enqueuer's next_run_at/last_run_at bookkeeping is not an action.
CREATE OR REPLACE FUNCTION public.opsd_schedules_audit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  v_old jsonb;
  v_new jsonb;
  v_changed jsonb;
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM public.opsd_audit_write('schedule.created', NULL, NULL, NEW.id,
      jsonb_build_object('name', NEW.name, 'cron', NEW.cron, 'timezone', NEW.timezone, 'env', NEW.env, 'kind', NEW.kind));
    RETURN NULL;
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM public.opsd_audit_write('schedule.deleted', NULL, NULL, OLD.id, jsonb_build_object('name', OLD.name));
    RETURN NULL;
  END IF;
  v_old := to_jsonb(OLD) - ARRAY['next_run_at', 'last_run_at', 'updated_at'];
  v_new := to_jsonb(NEW) - ARRAY['next_run_at', 'last_run_at', 'updated_at'];
  IF v_old = v_new THEN
    RETURN NULL;
  END IF;
  SELECT coalesce(jsonb_object_agg(n.key, n.value), '{}') INTO v_changed
    FROM jsonb_each(v_new) n WHERE v_old -> n.key IS DISTINCT FROM n.value;
  PERFORM public.opsd_audit_write(
    CASE WHEN v_changed = jsonb_build_object('enabled', false) THEN 'schedule.paused'
         WHEN v_changed = jsonb_build_object('enabled', true) THEN 'schedule.resumed'
         ELSE 'schedule.changed' END,
    NULL, NULL, NEW.id, jsonb_build_object('name', NEW.name, 'changed', v_changed));
  RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS run_schedules_audit ON public.run_schedules;
CREATE TRIGGER run_schedules_audit AFTER INSERT OR UPDATE OR DELETE ON public.run_schedules
  FOR EACH ROW EXECUTE FUNCTION public.opsd_schedules_audit();

-- opsd_audit lists audit entries oldest first, as a JSON array.
CREATE OR REPLACE FUNCTION public.opsd_audit(p_since timestamptz DEFAULT NULL, p_until timestamptz DEFAULT NULL,
                                             p_run_id uuid DEFAULT NULL, p_limit int DEFAULT 10000) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT coalesce(jsonb_agg(to_jsonb(a) ORDER BY a.at, a.id), '[]'::jsonb)
    FROM (SELECT * FROM public.audit_log x
           WHERE (p_since IS NULL OR x.at >= p_since) AND (p_until IS NULL OR x.at <= p_until)
             AND (p_run_id IS NULL OR x.run_id = p_run_id)
           ORDER BY x.at, x.id
           LIMIT greatest(p_limit, 1)) a
$$;

-- -------------------------------------------------------------------- retry

-- retry_run makes a new queued run with the same env, kind, plan, input,
-- template, session and lane as a run that ended error or canceled, with
-- retry_of pointing at it. Whoever may cancel the run may retry it (users:
-- their own and shared runs). Approval is asked again: the new run has none.
-- Returns NULL when the caller may not see the run. p_actor names the
-- operator in the audit trail when the caller is the service role.
CREATE OR REPLACE FUNCTION public.retry_run(p_run_id uuid, p_actor text DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  r      public.runs;
  v_id   uuid;
  v_root uuid := p_run_id;
  v_up   uuid;
  v_hops int := 0;
BEGIN
  -- Locked, so two retries of one run at once are made one after the other.
  SELECT * INTO r FROM public.runs x
   WHERE x.id = p_run_id
     AND (NOT public.opsd_caller_is_user() OR x.created_by IS NULL OR x.created_by = auth.uid())
   FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF r.status NOT IN ('error', 'canceled') THEN
    RAISE EXCEPTION 'retry_run: run % is %: only runs that ended error or canceled can be retried', p_run_id, r.status
      USING ERRCODE = 'check_violation', HINT = 'cancel it first, or wait for it to finish';
  END IF;
  -- A canceled run whose daemon has not stopped it yet has not ended.
  IF r.finished_at IS NULL THEN
    RAISE EXCEPTION 'retry_run: run % is canceled but still stopping: it can be retried once it has finished', p_run_id
      USING ERRCODE = 'check_violation', HINT = 'wait a few seconds and retry again';
  END IF;
  -- One live run per chain of retries (the first run and every copy of a
  -- copy), so cancelling and retrying copies cannot multiply a run. The
  -- chain's first run is locked: retries of any of its runs queue here.
  LOOP
    v_up := NULL;
    SELECT x.retry_of INTO v_up FROM public.runs x WHERE x.id = v_root;
    EXIT WHEN v_up IS NULL;
    v_hops := v_hops + 1;
    IF v_hops > 100 THEN
      RAISE EXCEPTION 'retry_run: run % ends a chain of more than 100 retries; submit a new run instead', p_run_id
        USING ERRCODE = 'check_violation';
    END IF;
    v_root := v_up;
  END LOOP;
  IF v_root <> p_run_id THEN
    PERFORM 1 FROM public.runs x WHERE x.id = v_root FOR UPDATE;
  END IF;
  WITH RECURSIVE chain (id) AS (
    SELECT v_root
    UNION
    SELECT x.id FROM public.runs x JOIN chain c ON x.retry_of = c.id)
  SELECT x.id INTO v_id FROM public.runs x JOIN chain c ON c.id = x.id
   WHERE x.finished_at IS NULL AND x.id <> p_run_id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'retry_run: run % already has a retry that has not finished (run %); one run of a chain of retries at a time', p_run_id, v_id
      USING ERRCODE = 'check_violation', HINT = 'wait for that retry to finish, or cancel it';
  END IF;
  IF NOT public.opsd_caller_is_user() AND nullif(btrim(p_actor), '') IS NOT NULL THEN
    PERFORM set_config('opsd.actor', 'operator:' || btrim(p_actor), true);
  END IF;
  INSERT INTO public.runs (env, kind, plan, intent, template_id, input, session_id, lane, priority, dry_run,
                           timeout_seconds, max_attempts, created_by, retry_of)
  VALUES (r.env, r.kind, r.plan, r.intent, r.template_id, r.input, r.session_id, r.lane, r.priority, r.dry_run,
          r.timeout_seconds, r.max_attempts,
          CASE WHEN public.opsd_caller_is_user() THEN auth.uid() ELSE r.created_by END, r.id)
  RETURNING id INTO v_id;
  PERFORM set_config('opsd.actor', '', true);
  RETURN v_id;
END
$$;

-- ---------------------------------------------------------------- retention

-- opsd_prune does one bounded batch of retention: at most p_batch rows per
-- table (run_events, run_steps, artifacts, then runs, and audit_log), each
-- rule given as an age in seconds (NULL keeps everything). Only finished runs
-- and their rows are touched. A run past its age takes its rows with it (in
-- batches here, and by ON DELETE CASCADE for anything left). Audit entries
-- go by their own age (p_audit_log), whatever became of their run or
-- schedule: audit_log has no foreign keys, so pruning runs never touches it,
-- and this function is the only way its rows are deleted. With p_dry_run it
-- counts all that a full pass would delete and deletes nothing. A pass holds
-- the 'prune' lease for a minute (renewed by each batch, given back by the
-- batch that finds nothing left) so two daemons do not both work at once; a
-- caller that does not hold it gets {"busy": holder}.
-- The signature before p_audit_log, should a development database have it:
-- two would make calls by name ambiguous.
DROP FUNCTION IF EXISTS public.opsd_prune(text, bigint, bigint, bigint, bigint, int, boolean);
CREATE OR REPLACE FUNCTION public.opsd_prune(p_worker text, p_run_events bigint DEFAULT NULL, p_run_steps bigint DEFAULT NULL,
                                             p_artifacts bigint DEFAULT NULL, p_runs bigint DEFAULT NULL,
                                             p_audit_log bigint DEFAULT NULL,
                                             p_batch int DEFAULT 500, p_dry_run boolean DEFAULT false) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  v_now timestamptz := now();
  v_runs_cut timestamptz := v_now - make_interval(secs => p_runs);
  v_ev_cut timestamptz := v_now - make_interval(secs => p_run_events);
  v_st_cut timestamptz := v_now - make_interval(secs => p_run_steps);
  v_ar_cut timestamptz := v_now - make_interval(secs => p_artifacts);
  v_au_cut timestamptz := v_now - make_interval(secs => p_audit_log);
  v_holder text;
  v_ev bigint;
  v_st bigint;
  v_ar bigint;
  v_runs bigint;
  v_au bigint;
  v_lim int := greatest(coalesce(p_batch, 500), 1);
BEGIN
  IF coalesce(btrim(p_worker), '') = '' THEN
    RAISE EXCEPTION 'opsd_prune: p_worker must name the caller' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF least(p_run_events, p_run_steps, p_artifacts, p_runs, p_audit_log) < 0 THEN
    RAISE EXCEPTION 'opsd_prune: retention ages must not be negative' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_dry_run THEN
    SELECT count(*) INTO v_ev FROM public.run_events e JOIN public.runs r ON r.id = e.run_id
     WHERE r.finished_at IS NOT NULL AND (e.ts < v_ev_cut OR r.finished_at < v_runs_cut);
    SELECT count(*) INTO v_st FROM public.run_steps e JOIN public.runs r ON r.id = e.run_id
     WHERE r.finished_at IS NOT NULL AND (r.finished_at < v_st_cut OR r.finished_at < v_runs_cut);
    SELECT count(*) INTO v_ar FROM public.artifacts e JOIN public.runs r ON r.id = e.run_id
     WHERE r.finished_at IS NOT NULL AND (e.created_at < v_ar_cut OR r.finished_at < v_runs_cut);
    SELECT count(*) INTO v_runs FROM public.runs r WHERE r.finished_at IS NOT NULL AND r.finished_at < v_runs_cut;
    SELECT count(*) INTO v_au FROM public.audit_log a WHERE a.at < v_au_cut;
    RETURN jsonb_build_object('run_events', v_ev, 'run_steps', v_st, 'artifacts', v_ar, 'runs', v_runs,
                              'audit_log', v_au, 'dry_run', true);
  END IF;

  INSERT INTO public.opsd_leases AS l (name, holder, until) VALUES ('prune', p_worker, v_now + interval '1 minute')
  ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
   WHERE l.until < v_now OR l.holder = excluded.holder
  RETURNING holder INTO v_holder;
  IF v_holder IS NULL THEN
    SELECT holder INTO v_holder FROM public.opsd_leases WHERE name = 'prune';
    RETURN jsonb_build_object('busy', v_holder);
  END IF;

  -- NULL cutoffs compare as NULL (never true): that rule keeps everything.
  WITH d AS (
    DELETE FROM public.run_events WHERE id IN (
      SELECT e.id FROM public.run_events e JOIN public.runs r ON r.id = e.run_id
       WHERE r.finished_at IS NOT NULL AND (e.ts < v_ev_cut OR r.finished_at < v_runs_cut)
       LIMIT v_lim)
    RETURNING 1)
  SELECT count(*) INTO v_ev FROM d;
  WITH d AS (
    DELETE FROM public.run_steps WHERE id IN (
      SELECT e.id FROM public.run_steps e JOIN public.runs r ON r.id = e.run_id
       WHERE r.finished_at IS NOT NULL AND (r.finished_at < v_st_cut OR r.finished_at < v_runs_cut)
       LIMIT v_lim)
    RETURNING 1)
  SELECT count(*) INTO v_st FROM d;
  WITH d AS (
    DELETE FROM public.artifacts WHERE id IN (
      SELECT e.id FROM public.artifacts e JOIN public.runs r ON r.id = e.run_id
       WHERE r.finished_at IS NOT NULL AND (e.created_at < v_ar_cut OR r.finished_at < v_runs_cut)
       LIMIT v_lim)
    RETURNING 1)
  SELECT count(*) INTO v_ar FROM d;
  -- Runs go once their rows are gone, so a run's cascade stays small.
  WITH d AS (
    DELETE FROM public.runs WHERE id IN (
      SELECT r.id FROM public.runs r
       WHERE r.finished_at IS NOT NULL AND r.finished_at < v_runs_cut
         AND NOT EXISTS (SELECT 1 FROM public.run_events e WHERE e.run_id = r.id)
         AND NOT EXISTS (SELECT 1 FROM public.run_steps e WHERE e.run_id = r.id)
         AND NOT EXISTS (SELECT 1 FROM public.artifacts e WHERE e.run_id = r.id)
       LIMIT v_lim
       FOR UPDATE SKIP LOCKED)
    RETURNING 1)
  SELECT count(*) INTO v_runs FROM d;
  -- Oldest entries first, along audit_log_at_idx.
  WITH d AS (
    DELETE FROM public.audit_log WHERE id IN (
      SELECT a.id FROM public.audit_log a WHERE a.at < v_au_cut ORDER BY a.at, a.id LIMIT v_lim)
    RETURNING 1)
  SELECT count(*) INTO v_au FROM d;
  -- Nothing left: the pass is over, the lease is given back.
  IF v_ev + v_st + v_ar + v_runs + v_au = 0 THEN
    DELETE FROM public.opsd_leases WHERE name = 'prune' AND holder = p_worker;
  END IF;
  RETURN jsonb_build_object('run_events', v_ev, 'run_steps', v_st, 'artifacts', v_ar, 'runs', v_runs,
                            'audit_log', v_au, 'dry_run', false);
END
$$;

-- ---------------------------------------------------- schedules for the CLI

-- opsd_schedule_save creates a schedule from a JSON object of its columns,
-- recording operator:<p_actor> in the audit trail.
CREATE OR REPLACE FUNCTION public.opsd_schedule_save(p_schedule jsonb, p_actor text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  s public.run_schedules;
BEGIN
  PERFORM set_config('opsd.actor', coalesce('operator:' || nullif(btrim(p_actor), ''), ''), true);
  INSERT INTO public.run_schedules (name, cron, timezone, env, kind, template_id, input, plan, lane, session_id,
                                    enabled, overlap)
  SELECT x.name, x.cron, coalesce(x.timezone, 'UTC'), x.env, x.kind, x.template_id, coalesce(x.input, '{}'), x.plan,
         coalesce(x.lane, 'A'), x.session_id, coalesce(x.enabled, true), coalesce(x.overlap, 'skip')
    FROM jsonb_to_record(p_schedule) AS x(name text, cron text, timezone text, env text, kind text, template_id uuid,
                                          input jsonb, plan jsonb, lane text, session_id uuid, enabled boolean, overlap text)
  RETURNING * INTO s;
  RETURN to_jsonb(s);
END
$$;

-- opsd_schedule_set pauses or resumes a schedule by name; NULL if none.
CREATE OR REPLACE FUNCTION public.opsd_schedule_set(p_name text, p_enabled boolean, p_actor text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  s public.run_schedules;
BEGIN
  PERFORM set_config('opsd.actor', coalesce('operator:' || nullif(btrim(p_actor), ''), ''), true);
  UPDATE public.run_schedules SET enabled = p_enabled WHERE name = p_name RETURNING * INTO s;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  RETURN to_jsonb(s);
END
$$;

CREATE OR REPLACE FUNCTION public.opsd_schedule_delete(p_name text, p_actor text DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  PERFORM set_config('opsd.actor', coalesce('operator:' || nullif(btrim(p_actor), ''), ''), true);
  DELETE FROM public.run_schedules WHERE name = p_name;
  RETURN FOUND;
END
$$;

CREATE OR REPLACE FUNCTION public.opsd_schedules() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.name), '[]'::jsonb) FROM public.run_schedules s
$$;

-- ----------------------------------------------------------------- security

ALTER TABLE public.run_schedules ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.audit_log     ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.opsd_leases   ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.run_schedules, public.audit_log, public.opsd_leases FROM anon, authenticated;
REVOKE ALL ON public.audit_log FROM service_role;
GRANT ALL ON public.run_schedules, public.opsd_leases TO service_role;
-- The audit trail is read-only even for the daemon: only SQL functions and
-- triggers (running as the owner) write it.
GRANT SELECT ON public.audit_log TO service_role;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO service_role;
REVOKE ALL ON SEQUENCE public.audit_log_id_seq FROM service_role;

-- schedules: like runs, browsers read their own and shared ones (no
-- created_by) and create them with the columns a browser may set on a run:
-- never input or template_id (the operator CLI sets those), and only in
-- sessions they can see. They change, pause and delete their own, and
-- shared ones that carry no template and no input: a shared schedule with
-- a template or input is an operator's (opsd schedule add), and whoever
-- could change its env, kind, plan or cron would run the operator's
-- template with inputs of their choosing. The CLI changes those through
-- the service role's functions. next_run_at and last_run_at are kept by
-- opsd.
GRANT SELECT, DELETE ON public.run_schedules TO anon, authenticated;
GRANT INSERT (id, name, cron, timezone, env, kind, plan, lane, session_id, enabled, overlap)
  ON public.run_schedules TO anon, authenticated;
GRANT UPDATE (name, cron, timezone, env, kind, plan, lane, session_id, enabled, overlap)
  ON public.run_schedules TO anon, authenticated;
DROP POLICY IF EXISTS run_schedules_owner ON public.run_schedules;
DROP POLICY IF EXISTS run_schedules_read ON public.run_schedules;
CREATE POLICY run_schedules_read ON public.run_schedules FOR SELECT TO anon, authenticated
  USING (created_by IS NULL OR created_by = auth.uid());
DROP POLICY IF EXISTS run_schedules_create ON public.run_schedules;
CREATE POLICY run_schedules_create ON public.run_schedules FOR INSERT TO anon, authenticated
  WITH CHECK ((created_by IS NULL OR created_by = auth.uid())
              AND template_id IS NULL AND input = '{}'::jsonb
              AND (session_id IS NULL OR EXISTS (
                     SELECT 1 FROM public.sessions s
                      WHERE s.id = session_id AND (s.created_by IS NULL OR s.created_by = auth.uid()))));
DROP POLICY IF EXISTS run_schedules_edit ON public.run_schedules;
CREATE POLICY run_schedules_edit ON public.run_schedules FOR UPDATE TO anon, authenticated
  USING (created_by = auth.uid() OR (created_by IS NULL AND template_id IS NULL AND input = '{}'::jsonb))
  WITH CHECK ((created_by = auth.uid() OR (created_by IS NULL AND template_id IS NULL AND input = '{}'::jsonb))
              AND (session_id IS NULL OR EXISTS (
                     SELECT 1 FROM public.sessions s
                      WHERE s.id = session_id AND (s.created_by IS NULL OR s.created_by = auth.uid()))));
DROP POLICY IF EXISTS run_schedules_delete ON public.run_schedules;
CREATE POLICY run_schedules_delete ON public.run_schedules FOR DELETE TO anon, authenticated
  USING (created_by = auth.uid() OR (created_by IS NULL AND template_id IS NULL AND input = '{}'::jsonb));

-- The audit trail of a run or schedule is readable by who may read it.
GRANT SELECT ON public.audit_log TO anon, authenticated;
DROP POLICY IF EXISTS audit_log_read ON public.audit_log;
-- Entries older than the row are another row's that had the same id (the
-- browser may choose ids): they stay hidden.
CREATE POLICY audit_log_read ON public.audit_log FOR SELECT TO anon, authenticated
  USING ((run_id IS NOT NULL AND EXISTS (SELECT 1 FROM public.runs r WHERE r.id = run_id AND r.created_at <= at))
      OR (schedule_id IS NOT NULL AND EXISTS (SELECT 1 FROM public.run_schedules s WHERE s.id = schedule_id AND s.created_at <= at)));
DROP POLICY IF EXISTS audit_log_service ON public.audit_log;
CREATE POLICY audit_log_service ON public.audit_log FOR SELECT TO service_role USING (true);

DO $$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN
    SELECT p.oid::regprocedure FROM pg_proc p
     WHERE p.pronamespace = 'public'::regnamespace
       AND p.proname IN ('opsd_actor', 'opsd_audit_write', 'opsd_four_eyes', 'opsd_cron_field', 'opsd_cron_parse', 'opsd_cron_next_parsed',
                         'opsd_cron_next', 'opsd_schedules_guard', 'opsd_enqueue_due_schedules', 'opsd_runs_canceled_by',
                         'opsd_runs_audit', 'opsd_schedules_audit', 'opsd_audit', 'retry_run', 'opsd_prune',
                         'opsd_schedule_save', 'opsd_schedule_set', 'opsd_schedule_delete', 'opsd_schedules',
                         'opsd_runs_lane_guard')
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, anon, authenticated', f);
  END LOOP;
END
$$;

GRANT EXECUTE ON FUNCTION
  public.opsd_enqueue_due_schedules(int), public.opsd_audit(timestamptz, timestamptz, uuid, int),
  public.opsd_prune(text, bigint, bigint, bigint, bigint, bigint, int, boolean),
  public.opsd_schedule_save(jsonb, text), public.opsd_schedule_set(text, boolean, text),
  public.opsd_schedule_delete(text, text), public.opsd_schedules(), public.opsd_cron_next(text, text, timestamptz),
  public.retry_run(uuid, text)
TO service_role;
GRANT EXECUTE ON FUNCTION public.retry_run(uuid, text), public.opsd_cron_next(text, text, timestamptz)
  TO anon, authenticated;
-- Trigger helpers run in the writer's context (the browser writes schedules
-- and runs through PostgREST). The cron parser's parts are not among them:
-- opsd_cron_next (SECURITY DEFINER) calls them as their owner, after the
-- length limit, so nobody hands them a huge field or parsed spec directly.
GRANT EXECUTE ON FUNCTION public.opsd_schedules_guard(), public.opsd_runs_canceled_by(), public.opsd_actor(),
  public.opsd_runs_lane_guard()
TO anon, authenticated, service_role;
REVOKE ALL ON FUNCTION public.opsd_cron_parse(text), public.opsd_cron_field(text, text, text, int, int, int, text[]),
  public.opsd_cron_next_parsed(jsonb, text, timestamptz)
FROM service_role;

DO $$
BEGIN
  IF (SELECT puballtables FROM pg_publication WHERE pubname = 'supabase_realtime') THEN
    RETURN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_publication_tables
                  WHERE pubname = 'supabase_realtime' AND schemaname = 'public' AND tablename = 'run_schedules') THEN
    ALTER PUBLICATION supabase_realtime ADD TABLE public.run_schedules;
  END IF;
END
$$;

-- ------------------------------------------------------------ queue gauges

-- opsd_queue_stats feeds the daemon's queue gauges (and the alert rules):
-- how long the oldest queued run has waited, and the runs waiting for an
-- approval before their action phase.
CREATE OR REPLACE FUNCTION public.opsd_queue_stats() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT jsonb_build_object(
    'queued', (SELECT count(*) FROM public.runs WHERE status = 'queued'),
    'oldest_queued_seconds', coalesce((SELECT extract(epoch FROM now() - min(created_at)) FROM public.runs WHERE status = 'queued'), 0),
    'awaiting_approval', (SELECT count(*) FROM public.runs WHERE status = 'running' AND phase = 'approval'),
    'oldest_approval_seconds', coalesce((SELECT extract(epoch FROM now() - min(started_at))
                                           FROM public.runs WHERE status = 'running' AND phase = 'approval'), 0))
$$;
REVOKE ALL ON FUNCTION public.opsd_queue_stats() FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.opsd_queue_stats() TO service_role;

-- -------------------------------------------------------- automatic retries

-- opsd_requeue_run gives an attempt that failed before its action phase
-- (validate or preflight) back to the queue, claimable again after
-- p_delay_seconds (runs.not_before, honoured by claim_run). Fenced by
-- (worker, attempt) like finish_run; attempt (the fencing token) and
-- attempts_used are kept, so max_attempts bounds the retries. A run in or
-- past its action phase is never requeued: its side effects may have
-- happened. The daemon writes the System event saying why (p_reason) before
-- it calls; p_reason is kept for callers' logs only.
CREATE OR REPLACE FUNCTION public.opsd_requeue_run(p_run_id uuid, p_worker text, p_attempt int, p_delay_seconds int,
                                                   p_reason text DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  IF p_delay_seconds IS NULL OR p_delay_seconds < 0 OR p_delay_seconds > 86400 THEN
    RAISE EXCEPTION 'opsd_requeue_run: p_delay_seconds = %: must be between 0 and 86400', p_delay_seconds
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE public.runs x
     SET status = 'queued', claimed_by = NULL, claimed_at = NULL, heartbeat_at = NULL, started_at = NULL,
         lease_expires_at = NULL, phase = NULL, claim_token = NULL,
         not_before = clock_timestamp() + make_interval(secs => p_delay_seconds)
   WHERE x.id = p_run_id AND x.claimed_by = p_worker AND x.attempt = p_attempt AND x.status = 'running'
     AND x.finished_at IS NULL AND x.phase IN ('validate', 'preflight');
  IF FOUND THEN
    RETURN true;
  END IF;
  -- A replay of a call whose answer was lost: the attempt is queued with its
  -- backoff and nobody has claimed it since (a claim makes a new attempt).
  RETURN EXISTS (SELECT 1 FROM public.runs x
                  WHERE x.id = p_run_id AND x.attempt = p_attempt AND x.status = 'queued' AND x.not_before IS NOT NULL);
END
$$;
REVOKE ALL ON FUNCTION public.opsd_requeue_run(uuid, text, int, int, text) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.opsd_requeue_run(uuid, text, int, int, text) TO service_role;
