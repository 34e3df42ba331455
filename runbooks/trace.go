package runbooks

import (
	"context"
	"fmt"
	"net/http"

	"github.com/opscontrolroom/opsd/adapters"
	"github.com/opscontrolroom/opsd/executor"
)

// Event sources, as the UI names integrations.
const (
	srcSystem       = "System"
	srcVercel       = "Vercel"
	srcGitHub       = "GitHub"
	srcDigitalOcean = "DigitalOcean"
	srcSupabase     = "Supabase"
)

// sourceOf maps an adapter name to the event source the UI shows.
func sourceOf(adapter string) string {
	switch adapter {
	case "vercel":
		return srcVercel
	case "github":
		return srcGitHub
	case "digitalocean":
		return srcDigitalOcean
	case "supabase":
		return srcSupabase
	}
	return srcSystem
}

// traced returns ctx whose adapter HTTP calls are each reported to the run as
// one event, e.g. "GET /v13/deployments/x -> 200 (123ms)", with data
// {method, path, status, duration_ms, attempt}. source overrides the
// adapter's own source when not empty (an HTTP check of a DigitalOcean URL
// is reported as DigitalOcean). Reads are debug events, writes info, and
// failures (4xx, 5xx, transport errors) warn.
func traced(ctx context.Context, rc *executor.RunContext, source string) context.Context {
	return adapters.WithRecorder(ctx, adapters.RecorderFunc(func(_ context.Context, c adapters.Call) {
		src := source
		if src == "" {
			src = sourceOf(c.Adapter)
		}
		ms := c.Duration.Milliseconds()
		data := map[string]any{"method": c.Method, "path": c.Path, "status": c.Status, "duration_ms": ms, "attempt": c.Attempt}
		level := executor.LevelDebug
		if c.Method != http.MethodGet && c.Method != http.MethodHead {
			level = executor.LevelInfo
		}
		var msg string
		if c.Err != nil {
			level = executor.LevelWarn
			data["error"] = c.Err.Error()
			msg = fmt.Sprintf("%s %s -> %v (%dms)", c.Method, c.Path, c.Err, ms)
		} else {
			if c.Status >= 400 {
				level = executor.LevelWarn
			}
			msg = fmt.Sprintf("%s %s -> %d (%dms)", c.Method, c.Path, c.Status, ms)
		}
		if c.Attempt > 1 {
			msg += fmt.Sprintf(" (attempt %d)", c.Attempt)
		}
		// A failed event write means the run is ending; the phase reports that.
		_ = rc.Emit(level, src, msg, data)
	}))
}
