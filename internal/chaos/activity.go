package chaos

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// activity fills the report's counts.
func (h *harness) activity(rep *Report, runs []*runRow, logs []logLine, workers map[string]*proc) {
	status := map[string]int{}
	multi := 0
	reaper := map[string]int{}
	released, retried, liveReaped := 0, 0, 0
	for _, r := range runs {
		status[r.status]++
		if len(r.attempts) > 1 {
			multi++
		}
		for _, e := range r.events {
			switch {
			case e.isReaper():
				reaper[e.str("action")]++
				if p := workers[e.str("worker")]; p != nil && (p.killed.IsZero() || e.ts.Before(p.killed)) {
					liveReaped++
				}
			case e.isRelease() && e.data["retry"] == true:
				retried++
			case e.isRelease():
				released++
			}
		}
	}
	zombies, zombieMax := 0, time.Duration(0)
	byStore := map[string]int{}
	for _, r := range runs {
		for _, a := range r.attempts {
			if p := workers[a.worker]; p != nil {
				byStore[p.store]++
			}
			if !a.lostAt.IsZero() {
				zombies++
				if d := a.lostAt.Sub(a.lastEvent); d > zombieMax {
					zombieMax = d
				}
			}
		}
	}
	refused, finishFailed := 0, 0
	for _, l := range logs {
		switch l.msg {
		case msgFinishRefused:
			refused++
		case msgFinishFailed:
			finishFailed++
		}
	}
	rpc, upd, wasQ, wasR := 0, 0, 0, 0
	for _, c := range h.cancels {
		if c.method == "rpc" {
			rpc++
		} else {
			upd++
		}
		if c.was == "queued" {
			wasQ++
		} else {
			wasR++
		}
	}
	// The most common errors, by their first words, to tell the injected
	// failures from a broken build.
	errs := map[string]int{}
	for _, r := range runs {
		if r.status == "error" {
			msg := r.errorMessage
			if len(msg) > 160 {
				msg = msg[:160]
			}
			errs[msg]++
		}
	}
	type errCount struct {
		msg string
		n   int
	}
	var top []errCount
	for m, n := range errs {
		top = append(top, errCount{m, n})
	}
	sort.Slice(top, func(i, j int) bool { return top[i].n > top[j].n || (top[i].n == top[j].n && top[i].msg < top[j].msg) })
	var topErrs []string
	for i := 0; i < len(top) && i < 3; i++ {
		topErrs = append(topErrs, fmt.Sprintf("%d× %q", top[i].n, top[i].msg))
	}
	st := h.rest.Stats()
	cfg := h.cfg
	rep.activity = [][2]string{
		{"chaos", fmt.Sprintf("%s (seed %d), %d direct + %d REST daemons, heartbeat %s, stale-after %s, reaper %s",
			h.ended.Sub(h.began).Round(time.Millisecond), cfg.Seed, cfg.Direct, cfg.REST, cfg.HeartbeatInterval, cfg.StaleAfter, cfg.ReaperPeriod)},
		{"runs enqueued", fmt.Sprintf("%d: success %d, error %d, canceled %d, queued %d, running %d",
			len(h.enqueued), status["success"], status["error"], status["canceled"], status["queued"], status["running"])},
		{"most common errors", strings.Join(topErrs, "; ")},
		{"attempts (claims)", fmt.Sprintf("%d (direct %d, REST %d); %d runs took more than one",
			sumAttempts(runs), byStore[storeDirect], byStore[storeREST], multi)},
		{"daemon stops", fmt.Sprintf("%d SIGKILL, %d SIGTERM, %d restarts; %d refused to start during an outage (exit 1), %d other exits",
			h.kills, h.terms, h.restarts, h.startRefused, len(h.crashes))},
		{"cancels", fmt.Sprintf("%d (cancel_run %d, UPDATE %d; picked queued %d, running %d)", len(h.cancels), rpc, upd, wasQ, wasR)},
		{"reaper", fmt.Sprintf("requeued %d, errored %d, finalized %d; %d of them from live daemons cut off; %d released on SIGTERM; %d requeued for an automatic retry",
			reaper["requeued"], reaper["errored"], reaper["finalized"], liveReaped, released, retried)},
		{"leases lost while running", fmt.Sprintf("%d attempts stopped on hearing their lease was lost (longest %s after their last stored event); "+
			"%d finishes refused (lease lost meanwhile); %d finishes failed (store unreachable)", zombies, zombieMax.Round(time.Millisecond), refused, finishFailed)},
		{"REST requests", fmt.Sprintf("%d received, %d executed, %d committed", st.Requests, st.Executed, st.Committed)},
		{"faults injected", fmt.Sprintf("5xx %d, 429 %d, latency %d, dropped %d, lost responses %d, outage-refused %d (%d outages of %s)",
			st.Status, st.RateLimited, st.Delayed, st.Dropped, st.LostResponses, st.OutageRejected, len(h.outages), cfg.Outage)},
		{"log lines", fmt.Sprintf("%d from %d processes", len(logs), len(h.procs))},
	}
}

func sumAttempts(runs []*runRow) int {
	n := 0
	for _, r := range runs {
		n += len(r.attempts)
	}
	return n
}

// dist summarizes durations as n, p50, p95 and max.
func dist(ds []time.Duration) string {
	if len(ds) == 0 {
		return "n=0"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	q := func(p float64) time.Duration { return s[int(p*float64(len(s)-1))].Round(time.Millisecond) }
	return fmt.Sprintf("n=%d p50 %s p95 %s max %s", len(s), q(0.5), q(0.95), s[len(s)-1].Round(time.Millisecond))
}
