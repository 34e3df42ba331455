// Package runbooks holds what runs do: the five kinds (deploy, healthcheck,
// spec, incident, schema_sync), the template DSL of run_templates with its
// system and tool actions, and the resolver that picks one for a run.
package runbooks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/opscontrolroom/opsd/executor"
)

// KindFunc builds the runbook of one kind for a run.
type KindFunc func(run *executor.Run) executor.Runbook

// Resolver picks a run's runbook: its template when template_id is set,
// otherwise the runbook of its kind.
type Resolver struct {
	Store executor.Store
	Tools Tools
	Kinds map[string]KindFunc

	clients *clients // classifies and allowlists template targets; nil: no tools
	mu      sync.Mutex
	cache   map[string]cachedTemplate
}

type cachedTemplate struct {
	tpl      *executor.Template
	parsed   *Template
	parseErr error
	at       time.Time
}

// templateTTL is how long a loaded template is reused; edits show up after it.
const templateTTL = 10 * time.Second

var _ executor.Resolver = (*Resolver)(nil)

// Resolve implements executor.Resolver.
func (r *Resolver) Resolve(ctx context.Context, run *executor.Run) (executor.Runbook, error) {
	if run.TemplateID != nil && *run.TemplateID != "" {
		c, err := r.template(ctx, *run.TemplateID)
		if err != nil {
			return nil, err
		}
		return &TemplateRunbook{Source: c.tpl, Tools: r.Tools, parsed: c.parsed, parseErr: c.parseErr, clients: r.clients}, nil
	}
	if k, ok := r.Kinds[run.Kind]; ok {
		return k(run), nil
	}
	return nil, fmt.Errorf("%w: no runbook for kind %q", executor.ErrValidation, run.Kind)
}

func (r *Resolver) template(ctx context.Context, id string) (cachedTemplate, error) {
	r.mu.Lock()
	c, ok := r.cache[id]
	r.mu.Unlock()
	if ok && time.Since(c.at) < templateTTL {
		return c, nil
	}
	tpl, err := r.Store.GetTemplate(ctx, id)
	if errors.Is(err, executor.ErrNotFound) {
		return cachedTemplate{}, fmt.Errorf("%w: template %s does not exist", executor.ErrValidation, id)
	}
	if err != nil {
		return cachedTemplate{}, fmt.Errorf("load template %s: %w", id, err)
	}
	c = cachedTemplate{tpl: tpl, at: time.Now()}
	c.parsed, c.parseErr = ParseTemplate(tpl.TemplateYAML, r.Tools.Has)
	r.mu.Lock()
	if r.cache == nil {
		r.cache = map[string]cachedTemplate{}
	}
	r.cache[id] = c
	r.mu.Unlock()
	return c, nil
}
