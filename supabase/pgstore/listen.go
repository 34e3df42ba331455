package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/opscontrolroom/opsd/internal/backoff"
)

// WakeChannel is the NOTIFY channel of the runs trigger; the payload is a lane.
const WakeChannel = "opsd_wake"

const (
	wakeBuffer = 64
	// listenIdleCheck is how long the listener waits for a notification
	// before it pings its connection: a connection silently dropped by the
	// network would otherwise never report an error.
	listenIdleCheck  = 30 * time.Second
	listenPingLimit  = 5 * time.Second
	listenBackoffMin = 200 * time.Millisecond
	listenBackoffMax = 30 * time.Second
	// listenStable is how long a connection must have lived for the next
	// loss to start the backoff from the beginning again.
	listenStable = time.Minute
)

// Wakeups returns a channel that receives a lane name when a run of that lane
// may be claimable, and "" (any lane) after every (re)connect so nothing
// queued while the listener was away is missed. Sends never block: when the
// buffer is full the wakeups are coalesced into one "". The channel is
// closed when ctx is done or the store is closed. It is nil when the
// connection cannot LISTEN (Supabase's transaction pooler): poll instead.
func (s *Store) Wakeups(ctx context.Context) <-chan string {
	if s.listenCfg == nil {
		return nil
	}
	ch := make(chan string, wakeBuffer)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		close(ch)
		return ch
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(ch)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		unregister := context.AfterFunc(s.stopCtx, cancel) // Close stops it too
		defer unregister()
		s.listen(ctx, ch)
	}()
	return ch
}

// listen holds one dedicated connection (outside the pool: a pooled
// connection would lose its LISTEN on release) and reconnects with jittered
// exponential backoff until ctx is done.
func (s *Store) listen(ctx context.Context, ch chan string) {
	failures := 0
	for {
		began := time.Now()
		err := s.listenOnce(ctx, ch)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > listenStable {
			failures = 0
		}
		failures++
		delay := backoff.Policy{Min: listenBackoffMin, Max: listenBackoffMax}.Delay(failures)
		s.log.Warn("wakeup listener lost its connection; reconnecting",
			zap.Error(err), zap.Int("attempt", failures), zap.Duration("backoff", delay))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// listenOnce connects, LISTENs, sends the catch-up "" and forwards
// notifications until the connection fails or ctx is done.
func (s *Store) listenOnce(ctx context.Context, ch chan string) error {
	conn, err := pgx.ConnectConfig(ctx, s.listenCfg)
	if err != nil {
		return pgError(ctx, "listen: connect", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+WakeChannel, pgx.QueryExecModeSimpleProtocol); err != nil {
		return pgError(ctx, "listen: LISTEN "+WakeChannel, err)
	}
	s.log.Debug("wakeup listener connected", zap.String("channel", WakeChannel))
	wake(ch, "")
	for {
		wctx, cancel := context.WithTimeout(ctx, listenIdleCheck)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			wake(ch, n.Payload)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			// Idle: make sure the connection is still there.
			pctx, cancel := context.WithTimeout(ctx, listenPingLimit)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return pgError(ctx, "listen: ping", err)
			}
		default:
			return pgError(ctx, "listen: wait", err)
		}
	}
}

// wake sends without blocking. When the buffer is full one queued wakeup is
// replaced by "" (any lane), which subsumes every lane dropped.
func wake(ch chan string, lane string) {
	select {
	case ch <- lane:
		return
	default:
	}
	select {
	case <-ch:
	default:
	}
	select {
	case ch <- "":
	default:
	}
}
