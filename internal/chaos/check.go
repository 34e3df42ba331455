package chaos

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// phaseRank orders the phases; events without a phase rank 0.
var phaseRank = map[string]int{"validate": 1, "preflight": 2, "approval": 3, "action": 4, "verify": 5, "summarize": 6}

// InvariantQueuedCancelEvent names the invariant that a run canceled while
// queued, by cancel_run or by the frontend's UPDATE, has a System event
// saying so (its only, and final, event).
const InvariantQueuedCancelEvent = "a run canceled while queued has its System event"

// InvariantSelfFencing names the invariant that a daemon cut off from the
// database (its heartbeats failing) stops executing its runs before the
// reaper can hand them to another daemon, so that no run or lane executes
// twice at once.
const InvariantSelfFencing = "a daemon cut off from the database stops its runs before they are re-claimed"

// InvariantLateWrites names the invariant that no event of an attempt is
// stored after the reaper settled that attempt.
const InvariantLateWrites = "no event of an attempt is stored after the reaper settled it"

// The executor's log messages the harness reads.
const (
	msgLeaseLost     = "lease lost; stopped without writing a status"
	msgFinishRefused = "finish refused: the lease was lost meanwhile"
	msgFinishFailed  = "finish run; the reaper will settle it"
)

// check loads the rows and logs and evaluates every invariant.
func (h *harness) check() *Report {
	rep := &Report{Config: h.cfg, began: h.began}
	runs, err := h.load()
	if err != nil {
		h.t.Fatalf("chaos: load rows: %v", err)
	}
	var logs []logLine
	workers := map[string]*proc{}
	for _, p := range h.procs {
		workers[p.worker] = p
		ls, err := readLog(p.worker, p.logPath)
		if err != nil {
			h.t.Fatalf("chaos: read log of %s: %v", p.worker, err)
		}
		logs = append(logs, ls...)
	}
	spans(runs, logs)
	h.activity(rep, runs, logs, workers)

	bound := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	cfg := h.cfg
	reapBound := cfg.StaleAfter + cfg.ReaperPeriod + time.Second
	cancelBound := cfg.HeartbeatInterval + time.Second

	// 1. Every run terminal (or queued only if the drain timed out).
	inv := rep.add("every run terminal or queued; none stuck running")
	queued := 0
	for _, r := range runs {
		switch {
		case r.status == "queued":
			queued++
		case r.status == "running" || (r.status == "canceled" && r.finishedAt == nil):
			inv.fail("%s is %s (finished_at %v) after the drain", r.id, r.status, r.finishedAt)
		}
	}
	inv.detail = fmt.Sprintf("%d runs, %d left queued, drained in %s", len(runs), queued, bound(h.drained))
	if !h.drainOK {
		inv.fail("the queue did not drain within %s", cfg.DrainTimeout)
	}

	// 2. Runs of a SIGKILLed daemon are reaped within stale-after + reaper period.
	inv = rep.add(fmt.Sprintf("killed daemon's runs reaped within %s", bound(reapBound)))
	var reapLat []time.Duration
	for _, r := range runs {
		for _, e := range r.events {
			p := workers[e.str("worker")]
			if !e.isReaper() || p == nil || p.killed.IsZero() || e.ts.Before(p.killed) {
				continue
			}
			d := e.ts.Sub(p.killed)
			reapLat = append(reapLat, d)
			if d > reapBound {
				inv.fail("run %s of %s reaped %s after the kill", r.id, p.worker, bound(d))
			}
		}
	}
	inv.detail = fmt.Sprintf("%d runs reaped, %s", len(reapLat), dist(reapLat))

	// 3. No two attempts of a run at once. An overlap whose first attempt
	// was reaped while its daemon lived (cut off from the database) is told
	// apart: that is the daemon failing to fence itself, not a double claim.
	markReapedAlive(runs, workers)
	inv = rep.add("no run executed by two attempts at once")
	fence := rep.add(InvariantSelfFencing)
	attempts := 0
	for _, r := range runs {
		attempts += len(r.attempts)
		for i := 1; i < len(r.attempts); i++ {
			prev, next := r.attempts[i-1], r.attempts[i]
			if prev.end().After(next.claim) {
				rep.timeline(r)
				target := inv
				if prev.reapedAlive {
					target = fence
				}
				target.fail("run %s: attempt %d on %s ran until %s, after attempt %d on %s claimed it (overlap %s)",
					r.id, prev.n, prev.worker, prev.end().Format("15:04:05.000"), next.n, next.worker,
					bound(prev.end().Sub(next.claim)))
			}
		}
	}
	inv.detail = fmt.Sprintf("%d attempts of %d runs", attempts, len(runs))

	// 4. No lane of a session runs two runs at once.
	inv = rep.add("no lane of a session ran two runs at once")
	lanes := map[string][]*attemptSpan{}
	for _, r := range runs {
		if r.session != nil {
			lanes[*r.session+"/"+r.lane] = append(lanes[*r.session+"/"+r.lane], r.attempts...)
		}
	}
	for key, as := range lanes {
		sort.Slice(as, func(i, j int) bool { return as[i].claim.Before(as[j].claim) })
		for i := 1; i < len(as); i++ {
			for j := 0; j < i; j++ {
				if as[j].run != as[i].run && as[j].end().After(as[i].claim) {
					rep.timeline(as[j].run)
					rep.timeline(as[i].run)
					target := inv
					if as[j].reapedAlive {
						target = fence
					}
					target.fail("lane %s: run %s (%s) still ran when run %s (%s) was claimed (overlap %s)", key,
						as[j].run.id, as[j].worker, as[i].run.id, as[i].worker, bound(as[j].end().Sub(as[i].claim)))
					break
				}
			}
		}
	}
	inv.detail = fmt.Sprintf("%d (session, lane) pairs", len(lanes))

	// 5. Events numbered 1..n.
	inv = rep.add("events of each run have seq 1..n, no gaps or duplicates")
	events := 0
	for _, r := range runs {
		events += len(r.events)
		for i, e := range r.events {
			if e.seq != i+1 {
				inv.fail("run %s: event %d has seq %d", r.id, i+1, e.seq)
				break
			}
		}
	}
	inv.detail = fmt.Sprintf("%d events", events)

	// 5b. One writer at a time: within an attempt, events are in time order
	// and phases never go back. Rows an attempt stores after the reaper
	// settled it (its daemon was cut off, and its writer flushed later) are
	// told apart from any other interleaving.
	inv = rep.add("events of each attempt are in time and phase order (one writer)")
	late := rep.add(InvariantLateWrites)
	for _, r := range runs {
		var prev *eventRow
		worker, reaped, rank := "", false, 0
		for i := range r.events {
			e := &r.events[i]
			if e.isClaim() {
				prev, worker, reaped, rank = e, e.str("worker"), false, 0
				continue
			}
			if prev == nil {
				continue
			}
			target := inv
			if reaped {
				target = late
			}
			if e.ts.Before(prev.ts) {
				rep.timeline(r)
				target.fail("run %s: event #%d %q (%s) is older than #%d %q (%s) before it, in %s's attempt", r.id,
					e.seq, e.message, e.ts.Format("15:04:05.000"), prev.seq, prev.message, prev.ts.Format("15:04:05.000"), worker)
				break
			}
			if k := phaseRank[e.phase]; k > 0 && !e.isReaper() {
				if k < rank {
					rep.timeline(r)
					target.fail("run %s: event #%d %q is in phase %s after a later phase, in %s's attempt", r.id, e.seq, e.message, e.phase, worker)
					break
				}
				rank = max(rank, k)
			}
			if e.isReaper() && e.str("worker") == worker {
				reaped = true
			}
			prev = e
		}
	}
	inv.detail = "ts and phase never go back within an attempt"

	// 6. Finished runs end with their final event, and it agrees with the status.
	inv = rep.add("every finished run's last event is its final System event")
	agree := rep.add("the final event agrees with the run's status")
	silent := rep.add(InvariantQueuedCancelEvent)
	finished := 0
	for _, r := range runs {
		if r.finishedAt == nil {
			continue
		}
		finished++
		if len(r.events) == 0 {
			if r.status == "canceled" && r.canceledAt != nil && r.finishedAt.Equal(*r.canceledAt) {
				silent.fail("run %s was canceled while queued (by UPDATE) and has no event", r.id)
				continue
			}
			inv.fail("run %s is %s without any event", r.id, r.status)
			continue
		}
		last := r.events[len(r.events)-1]
		if !last.isFinal() {
			rep.timeline(r)
			if reapedBefore(r, last.seq) {
				late.fail("run %s (%s): settled by the reaper, then its cut-off daemon stored #%d %q", r.id, r.status, last.seq, last.message)
				continue
			}
			inv.fail("run %s (%s): last event #%d is %s %s %q", r.id, r.status, last.seq, last.level, last.source, last.message)
			continue
		}
		switch {
		case r.status == "success" && !strings.HasPrefix(last.message, "run succeeded in "),
			r.status == "error" && last.level != "error":
			// After the reaper settled the run, its cut-off daemon's rows
			// came in late and one of them now reads as the final event.
			if reapedBefore(r, last.seq) {
				rep.timeline(r)
				late.fail("run %s is %s (settled by the reaper) but its last event, stored late, is %q", r.id, r.status, last.message)
				continue
			}
			agree.fail("run %s is %s but its final event is %q", r.id, r.status, last.message)
		}
	}
	inv.detail = fmt.Sprintf("%d finished runs", finished)

	// 7. Cancels.
	// The heartbeat that tells a daemon of a cancel also renews its lease, so
	// when that daemon dies or is cut off right after, the stale clock starts
	// up to one heartbeat interval after the cancel.
	h.checkCancels(rep, runs, workers, cancelBound, reapBound+cfg.HeartbeatInterval)

	// 8. Daemons never crashed, panicked or raced.
	inv = rep.add("no daemon crashed, panicked or raced")
	for _, c := range h.crashes {
		inv.fail("%s", c)
	}
	for _, l := range logs {
		if l.level == "" && (strings.Contains(l.raw, "panic:") || strings.Contains(l.raw, "DATA RACE") || strings.HasPrefix(l.raw, "fatal error:")) {
			inv.fail("%s: %s", l.worker, l.raw)
		}
	}
	inv.detail = fmt.Sprintf("%d processes", len(h.procs))
	return rep
}

// reapedBefore reports whether the reaper settled the attempt that event
// seq belongs to before that event was stored (a reaper event precedes it
// with no claim in between).
func reapedBefore(r *runRow, seq int) bool {
	for i := len(r.events) - 1; i >= 0; i-- {
		e := r.events[i]
		switch {
		case e.seq >= seq:
		case e.isClaim():
			return false
		case e.isReaper():
			return true
		}
	}
	return false
}

// checkCancels: a cancel stops its run within the heartbeat interval plus a
// second when the run's daemon hears of it; when the daemon died or was cut
// off from the database, the reaper finalizes it instead.
func (h *harness) checkCancels(rep *Report, runs []*runRow, workers map[string]*proc, cancelBound, reapBound time.Duration) {
	owner := rep.add(fmt.Sprintf("cancel stopped the run within %s (heartbeat+1s), direct store", cancelBound.Round(time.Millisecond)))
	rest := rep.add(fmt.Sprintf("cancel stopped the run within %s, REST store under injected faults", reapBound.Round(time.Millisecond)))
	reaped := rep.add(fmt.Sprintf("cancel of a run whose daemon died or was cut off: reaper finalized it within %s", reapBound.Round(time.Millisecond)))
	var queuedN, killedN, cutOffN int
	var lat, latRest, reapLat []time.Duration
	for _, r := range runs {
		if r.status != "canceled" || r.canceledAt == nil || r.finishedAt == nil || len(r.events) == 0 {
			continue
		}
		last := r.events[len(r.events)-1]
		d := r.finishedAt.Sub(*r.canceledAt)
		var holder *proc
		if n := len(r.attempts); n > 0 {
			holder = workers[r.attempts[n-1].worker]
		}
		switch {
		case last.message == "run canceled before it started":
			queuedN++
		case last.isReaper():
			reapLat = append(reapLat, d)
			if p := workers[last.str("worker")]; p != nil && !p.killed.IsZero() && p.killed.Before(*r.finishedAt) {
				killedN++
			} else {
				cutOffN++
			}
			if d > reapBound {
				reaped.fail("run %s: finalized %s after the cancel", r.id, d.Round(time.Millisecond))
			}
		case holder != nil && holder.store == storeREST:
			// Every call of a REST daemon may be delayed, refused or
			// retried by the injected faults (latency leaves no log line),
			// so only the reaper's bound holds for it.
			latRest = append(latRest, d)
			if d > reapBound {
				rest.fail("run %s (%s): stopped %s after the cancel", r.id, holder.worker, d.Round(time.Millisecond))
			}
		default:
			lat = append(lat, d)
			if d > cancelBound {
				owner.fail("run %s (%s): stopped %s after the cancel", r.id, holder.worker, d.Round(time.Millisecond))
			}
		}
	}
	owner.detail = fmt.Sprintf("%d canceled while queued (finished at once); running: %s", queuedN, dist(lat))
	rest.detail = dist(latRest)
	reaped.detail = fmt.Sprintf("%d (daemon killed %d, cut off %d), %s", len(reapLat), killedN, cutOffN, dist(reapLat))
}
