package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/supabase/internal/wire"
)

var (
	_ executor.Store         = (*Store)(nil)
	_ executor.OperatorStore = (*Store)(nil)
)

// Config configures a Store.
type Config struct {
	// URL is a PostgreSQL connection string (URL or key=value), e.g. the
	// project's direct connection or its session pooler (port 5432).
	// Environment: OPSD_DATABASE_URL / DATABASE_URL (read by the caller).
	//
	// Supabase's transaction pooler (port 6543) hands each transaction to
	// any server connection: it cannot LISTEN and does not keep named
	// prepared statements. On port 6543, unless the URL sets
	// default_query_exec_mode itself, the store uses "cache_describe"
	// (unnamed statements, one round trip once a statement's types are
	// cached; "simple_protocol" works too) and Wakeups returns nil, so the
	// daemon polls.
	URL string
	// MaxConns caps the pool. Default 10. Environment: OPSD_DB_MAX_CONNS.
	MaxConns int32
	// Logger receives the listener's reconnects. Default: no logging.
	Logger *zap.Logger
}

// Application names, visible in pg_stat_activity.
const (
	pgAppName       = "opsd"
	pgListenAppName = "opsd-listen"
	// transactionPoolerPort is Supabase's transaction-mode pooler.
	transactionPoolerPort = 6543
)

// Store is the executor.Store over a direct PostgreSQL connection (pgxpool).
// It calls the SQL functions of the migrations and pushes wakeups from
// LISTEN opsd_wake.
type Store struct {
	pool      *pgxpool.Pool
	listenCfg *pgx.ConnConfig // nil when the connection cannot LISTEN
	log       *zap.Logger

	mu        sync.Mutex
	closed    bool
	stopCtx   context.Context // cancelled by Close: listeners stop
	stopAll   context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New opens a pool and checks that the database answers.
func New(ctx context.Context, cfg Config) (*Store, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", errors.New(redactParseError(err)))
	}
	pcfg.MaxConns = cfg.MaxConns
	if pcfg.MaxConns <= 0 {
		pcfg.MaxConns = 10
	}
	if _, ok := pcfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		pcfg.ConnConfig.RuntimeParams["application_name"] = pgAppName
	}
	// A cancelled context sends the server a cancel request, so a call
	// cancelled while it waits on a lock is aborted on the server too (a
	// claim never commits after its caller gave up) and the connection
	// stays usable. The socket deadline is the fallback when the server
	// does not answer.
	pcfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 2 * time.Second}
	}

	s := &Store{log: cfg.Logger}
	s.stopCtx, s.stopAll = context.WithCancel(context.Background())
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if pcfg.ConnConfig.Port == transactionPoolerPort {
		if !strings.Contains(cfg.URL, "default_query_exec_mode") {
			pcfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
		}
	} else {
		s.listenCfg = pcfg.ConnConfig.Copy()
		s.listenCfg.RuntimeParams["application_name"] = pgListenAppName
		// The listener waits with a timeout to check its connection when
		// idle; a cancel request there would only disturb the server. A
		// socket deadline interrupts the wait and keeps the connection.
		s.listenCfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
			return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
		}
	}

	s.pool, err = pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		s.stopAll()
		return nil, pgError(ctx, "open database pool", err)
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// redactParseError keeps the reason a connection string was refused and drops
// the string itself, which may hold a password (url.Error quotes it whole).
func redactParseError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return "invalid connection string: " + ue.Err.Error()
	}
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) && pe.Unwrap() != nil {
		return "invalid connection string: " + pe.Unwrap().Error()
	}
	return "invalid connection string"
}

// Close stops the listeners, waits for them and closes the pool.
func (s *Store) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.stopAll()
		s.mu.Unlock()
		s.wg.Wait()
		s.pool.Close()
	})
}

// Pool is the store's connection pool (for the operator CLI's extras).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// ClaimRuns claims up to req.Limit runs of req.Lane through claim_run.
func (s *Store) ClaimRuns(ctx context.Context, req executor.ClaimRequest) ([]*executor.Run, error) {
	rows, err := s.pool.Query(ctx, `SELECT public.claim_run($1, $2, $3, $4::uuid, $5)`,
		req.Worker, req.Lane, req.Limit, wire.NullString(req.Token), wire.LeaseSeconds(req.LeaseFor))
	if err != nil {
		return nil, pgError(ctx, "claim_run lane "+req.Lane, err)
	}
	runs, err := collectRuns(rows)
	if err != nil {
		return nil, pgError(ctx, "claim_run lane "+req.Lane, err)
	}
	return runs, nil
}

// Heartbeat renews every lease of worker in one call; states come back in
// the order of leases.
func (s *Store) Heartbeat(ctx context.Context, worker string, leases []executor.Lease, leaseFor time.Duration) ([]executor.LeaseState, error) {
	if len(leases) == 0 {
		return nil, nil
	}
	ids := make([]pgtype.UUID, len(leases))
	attempts := make([]int32, len(leases))
	for i, l := range leases {
		u, err := parseUUID("heartbeat_runs", l.RunID)
		if err != nil {
			return nil, err
		}
		ids[i], attempts[i] = u, int32(l.Attempt)
	}
	rows, err := s.pool.Query(ctx, `SELECT run_id, state, approved, coalesce(approved_by, ''), coalesce(message, '')
		FROM public.heartbeat_runs($1, $2, $3, $4)`, worker, ids, attempts, wire.LeaseSeconds(leaseFor))
	if err != nil {
		return nil, pgError(ctx, "heartbeat_runs", err)
	}
	byID := make(map[[16]byte]executor.LeaseState, len(leases))
	var (
		id pgtype.UUID
		st executor.LeaseState
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &st.State, &st.Approved, &st.ApprovedBy, &st.Message}, func() error {
		st.RunID = uuidString(id)
		byID[id.Bytes] = st
		return nil
	})
	if err != nil {
		return nil, pgError(ctx, "heartbeat_runs", err)
	}
	out := make([]executor.LeaseState, len(leases))
	for i, u := range ids {
		ls, ok := byID[u.Bytes]
		if !ok {
			ls = executor.LeaseState{RunID: uuidString(u), State: executor.LeaseLost}
		}
		out[i] = ls
	}
	return out, nil
}

// SetPhase records the current phase of a leased run.
func (s *Store) SetPhase(ctx context.Context, lease executor.Lease, phase string) (bool, error) {
	return s.queryBool(ctx, "set_run_phase "+phase, `SELECT public.set_run_phase($1, $2, $3, $4)`,
		lease.RunID, lease.Worker, lease.Attempt, phase)
}

// FinishRun is the fenced terminal write.
func (s *Store) FinishRun(ctx context.Context, f executor.Finish) (bool, error) {
	var events *string
	if len(f.Events) > 0 {
		rows, err := wire.EventRows("finish_run", f.Events)
		if err != nil {
			return false, err
		}
		b, err := json.Marshal(rows)
		if err != nil {
			return false, wire.InvalidInput("finish_run", "encode final events: %v", err)
		}
		events = ptrTo(string(b))
	}
	return s.queryBool(ctx, "finish_run", `SELECT public.finish_run($1, $2, $3, $4, $5, $6, $7)`,
		f.RunID, f.Worker, f.Attempt, f.Status, wire.NullText(f.ErrorMessage), nullJSON(wire.JSON(f.Output)), events)
}

// ReleaseRun puts a leased run back to queued.
func (s *Store) ReleaseRun(ctx context.Context, lease executor.Lease, reason string) (bool, error) {
	return s.queryBool(ctx, "release_run", `SELECT public.release_run($1, $2, $3, $4)`,
		lease.RunID, lease.Worker, lease.Attempt, wire.NullText(reason))
}

// ReapStale acts on runs whose lease expired.
func (s *Store) ReapStale(ctx context.Context) ([]executor.ReapResult, error) {
	rows, err := s.pool.Query(ctx, `SELECT run_id::text, action, phase, coalesce(worker, '') FROM public.reap_stale_runs()`)
	if err != nil {
		return nil, pgError(ctx, "reap_stale_runs", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (executor.ReapResult, error) {
		var rr executor.ReapResult
		err := r.Scan(&rr.RunID, &rr.Action, &rr.Phase, &rr.Worker)
		return rr, err
	})
	if err != nil {
		return nil, pgError(ctx, "reap_stale_runs", err)
	}
	return out, nil
}

// SchemaVersion is the newest applied opsd migration ("" when none is).
func (s *Store) SchemaVersion(ctx context.Context) (string, error) {
	var v *string
	if err := s.pool.QueryRow(ctx, `SELECT public.opsd_schema_version()`).Scan(&v); err != nil {
		return "", pgError(ctx, "opsd_schema_version", err)
	}
	if v == nil {
		return "", nil
	}
	return *v, nil
}

// Ping checks connectivity through the ping() function.
func (s *Store) Ping(ctx context.Context) error {
	var pong string
	if err := s.pool.QueryRow(ctx, `SELECT public.ping()`).Scan(&pong); err != nil {
		return pgError(ctx, "ping", err)
	}
	if pong != "pong" {
		return &executor.StoreError{Kind: executor.ErrInvalidInput, Op: "ping", Message: fmt.Sprintf("ping() answered %q", pong)}
	}
	return nil
}

func (s *Store) queryBool(ctx context.Context, op, sql string, args ...any) (bool, error) {
	var ok bool
	if err := s.pool.QueryRow(ctx, sql, args...).Scan(&ok); err != nil {
		return false, pgError(ctx, op, err)
	}
	return ok, nil
}

// runJSON selects a run (aliased r) as the JSON claim_run returns, so one
// decoder serves claims and reads alike.
const runJSON = `to_jsonb(r) - 'claim_token'`

func scanRun(row pgx.Row) (*executor.Run, error) {
	var b []byte
	if err := row.Scan(&b); err != nil {
		return nil, err
	}
	return decodeRun(b)
}

func collectRuns(rows pgx.Rows) ([]*executor.Run, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*executor.Run, error) { return scanRun(r) })
}

func decodeRun(b []byte) (*executor.Run, error) {
	run := new(executor.Run)
	if err := json.Unmarshal(b, run); err != nil {
		return nil, fmt.Errorf("decode run: %w", err)
	}
	// encoding/json keeps a JSON null as the bytes "null" in a RawMessage;
	// an absent value is nil everywhere else.
	run.Plan, run.Input, run.Output = wire.NullRaw(run.Plan), wire.NullRaw(run.Input), wire.NullRaw(run.Output)
	return run, nil
}

// nullJSON is NULL for an empty or null document; otherwise the raw JSON,
// sent as text and parsed by the server.
func nullJSON(m json.RawMessage) *string {
	if len(m) == 0 || string(m) == "null" {
		return nil
	}
	s := string(m)
	return &s
}

// jsonText is a JSON document for a jsonb array element; NULL when empty or null.
func jsonText(m json.RawMessage) pgtype.Text {
	m = wire.NullRaw(m)
	return pgtype.Text{String: string(m), Valid: m != nil}
}

func limitArg(n int) *int64 {
	if n <= 0 {
		return nil
	}
	v := int64(n)
	return &v
}

func parseUUID(op, s string) (pgtype.UUID, error) {
	var u pgtype.UUID
	if err := u.Scan(s); err != nil {
		return u, wire.InvalidInput(op, "invalid uuid %q", s)
	}
	return u, nil
}

func uuidString(u pgtype.UUID) string {
	b := u.Bytes
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// AppendRows stores a batch through append_run_rows in one round trip and
// returns the leases whose rows were refused.
func (s *Store) AppendRows(ctx context.Context, worker string, r executor.Rows) ([]executor.Lease, error) {
	const op = "append_run_rows"
	a, err := wire.NewRowsArgs(op, r)
	if err != nil {
		return nil, err
	}
	if a.Empty() {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT run_id::text, attempt FROM public.append_run_rows($1, $2::jsonb, $3::jsonb, $4::jsonb, $5::jsonb)`,
		worker, jsonArg(a.Events), jsonArg(a.Steps), jsonArg(a.Phases), jsonArg(a.Finishes))
	if err != nil {
		return nil, pgError(ctx, op, err)
	}
	refused, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (executor.Lease, error) {
		l := executor.Lease{Worker: worker}
		err := row.Scan(&l.RunID, &l.Attempt)
		return l, err
	})
	if err != nil {
		return nil, pgError(ctx, op, err)
	}
	return refused, nil
}

// jsonArg is v as JSON text, or NULL for nil.
func jsonArg(v any) *string {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return ptrTo(string(b))
}

func ptrTo[T any](v T) *T { return &v }

// PutArtifact stores one artifact of a leased run (put_artifact).
func (s *Store) PutArtifact(ctx context.Context, lease executor.Lease, a executor.Artifact) error {
	op := "put artifact " + a.Title
	var id *int64
	err := s.pool.QueryRow(ctx, `SELECT public.put_artifact($1, $2, $3, $4, $5, $6)`,
		lease.Worker, lease.RunID, lease.Attempt, a.Kind, wire.Text(a.Title), wire.Text(a.Value)).Scan(&id)
	if err != nil {
		return pgError(ctx, op, err)
	}
	if id == nil {
		return wire.LeaseLost(op, lease)
	}
	return nil
}

// GetTemplate loads a template by id or slug; ErrNotFound names what was asked for.
func (s *Store) GetTemplate(ctx context.Context, idOrSlug string) (*executor.Template, error) {
	var id *pgtype.UUID
	if u, err := parseUUID("", idOrSlug); err == nil {
		id = &u
	}
	var t executor.Template
	err := s.pool.QueryRow(ctx, `
		SELECT id::text, slug, title, description, template_yaml FROM public.run_templates
		 WHERE slug = $1 OR id = $2 ORDER BY (id = $2) IS TRUE DESC LIMIT 1`, idOrSlug, id).
		Scan(&t.ID, &t.Slug, &t.Title, &t.Description, &t.TemplateYAML)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, &executor.StoreError{Kind: executor.ErrNotFound, Op: "get template",
			Message: fmt.Sprintf("template %q not found (by id or slug)", idOrSlug), Err: err}
	}
	if err != nil {
		return nil, pgError(ctx, fmt.Sprintf("get template %q", idOrSlug), err)
	}
	return &t, nil
}

// UpsertSpecDoc writes a spec_docs row by slug for a leased run (put_spec_doc).
func (s *Store) UpsertSpecDoc(ctx context.Context, lease executor.Lease, slug, title, content string) error {
	op := "upsert spec doc " + slug
	ok, err := s.queryBool(ctx, op, `SELECT public.put_spec_doc($1, $2, $3, $4, $5, $6)`,
		lease.Worker, lease.RunID, lease.Attempt, slug, wire.Text(title), wire.Text(content))
	if err == nil && !ok {
		err = wire.LeaseLost(op, lease)
	}
	return err
}
