package verceltest

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"maps"
	"strings"
	"time"
)

// Project is a project known to the fake, linked to a GitHub repository.
type Project struct {
	ID        string // "prj_..."; generated when empty
	Name      string
	AccountID string
	Framework string
	Org, Repo string // Git link; empty for an unlinked project
	RepoID    int64
	// LinkType is link.type: "github" (default), "github-limited",
	// "github-custom-host", "bitbucket" (Org, Repo are owner, slug) or
	// "gitlab" (Org, Repo are projectNamespace, projectName; RepoID is projectId).
	LinkType         string
	ProductionBranch string // default "main"
}

// Deployment is a deployment held by the fake.
type Deployment struct {
	ID           string // "dpl_..."; generated when empty
	Name         string
	URL          string // hostname; generated when empty
	ProjectID    string
	Target       string // "production", "staging" or "" (preview)
	State        string // readyState; default READY for added deployments
	CreatedAt    time.Time
	Meta         map[string]string
	ErrorCode    string
	ErrorMessage string
	Events       []Event

	pending []string // states still to pass through, one per GET
}

// Event is one build-log line.
type Event struct {
	Type    string // "stdout", "stderr", "command", ...
	Text    string
	Created time.Time
}

// AddProject registers a project and returns it with defaults filled in.
func (s *Server) AddProject(p Project) Project {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	if p.ID == "" {
		p.ID = fmt.Sprintf("prj_%s", token("project", s.seq))
	}
	if p.ProductionBranch == "" {
		p.ProductionBranch = "main"
	}
	if p.AccountID == "" {
		p.AccountID = firstNonEmpty(s.TeamID, "user_fake")
	}
	cp := p
	s.projects = append(s.projects, &cp)
	return p
}

// AddDeployment stores an existing deployment (READY unless State says
// otherwise) and returns it with defaults filled in.
func (s *Server) AddDeployment(d Deployment) Deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.State == "" {
		d.State = "READY"
	}
	stored := s.store(d)
	return stored.clone()
}

// Deployment returns the deployment with this ID or hostname.
func (s *Server) Deployment(idOrURL string) (Deployment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.findDeployment(idOrURL)
	if d == nil {
		return Deployment{}, false
	}
	return d.clone(), true
}

// Deployments returns all deployments, oldest first.
func (s *Server) Deployments() []Deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Deployment, 0, len(s.deployments))
	for _, d := range s.deployments {
		out = append(out, d.clone())
	}
	return out
}

// store fills defaults and appends d. Callers hold s.mu.
func (s *Server) store(d Deployment) *Deployment {
	s.seq++
	if d.ID == "" {
		d.ID = "dpl_" + token("deployment", s.seq)
	}
	if d.URL == "" {
		d.URL = fmt.Sprintf("%s-%s.vercel.app", strings.ToLower(firstNonEmpty(d.Name, "app")), strings.ToLower(token(d.ID, 0)[:9]))
	}
	// Creation times are strictly increasing so timestamp pagination is exact.
	ms := d.CreatedAt.UnixMilli()
	if d.CreatedAt.IsZero() {
		ms = time.Now().UnixMilli()
	}
	if ms <= s.lastCreated {
		ms = s.lastCreated + 1
	}
	s.lastCreated = max(s.lastCreated, ms)
	d.CreatedAt = time.UnixMilli(ms).UTC()
	d.Meta = maps.Clone(d.Meta)
	if d.Meta == nil {
		d.Meta = map[string]string{}
	}
	d.Events = append([]Event(nil), d.Events...)
	s.deployments = append(s.deployments, &d)
	return &d
}

func (s *Server) findProject(idOrName string) *Project {
	for _, p := range s.projects {
		if p.ID == idOrName || p.Name == idOrName {
			return p
		}
	}
	return nil
}

func (s *Server) findDeployment(idOrURL string) *Deployment {
	idOrURL = strings.TrimPrefix(strings.TrimPrefix(idOrURL, "https://"), "http://")
	for _, d := range s.deployments {
		if d.ID == idOrURL || d.URL == idOrURL {
			return d
		}
	}
	return nil
}

// advance moves a building deployment one state on and logs what its build
// would print. Callers hold s.mu.
func (d *Deployment) advance() {
	if len(d.pending) == 0 {
		return
	}
	d.State, d.pending = d.pending[0], d.pending[1:]
	now := time.Now().UTC()
	log := func(typ, text string) { d.Events = append(d.Events, Event{Type: typ, Text: text, Created: now}) }
	switch d.State {
	case "BUILDING":
		log("stdout", fmt.Sprintf("Cloning github.com/%s/%s (Branch: %s, Commit: %.7s)",
			d.Meta["githubOrg"], d.Meta["githubRepo"], d.Meta["githubCommitRef"], d.Meta["githubCommitSha"]))
		log("command", "Running \"npm run build\"")
	case "READY":
		log("stdout", "Build Completed in /vercel/output")
		log("stdout", "Deployment completed")
	case "ERROR":
		d.ErrorCode = "BUILD_FAILED"
		d.ErrorMessage = "Command \"npm run build\" exited with 1"
		log("stderr", "Error: Command \"npm run build\" exited with 1")
	case "CANCELED":
		log("stdout", "The deployment was canceled")
	}
}

func (d *Deployment) clone() Deployment {
	c := *d
	c.Meta = maps.Clone(d.Meta)
	c.Events = append([]Event(nil), d.Events...)
	c.pending = nil
	return c
}

// token derives a stable, ID-like string from a seed.
func token(seed string, n int) string {
	sum := sha1.Sum(fmt.Appendf(nil, "%s/%d", seed, n))
	return hex.EncodeToString(sum[:])[:24]
}

// fakeSHA is the commit a ref "resolves" to in the fake.
func fakeSHA(org, repo, ref string) string {
	sum := sha1.Sum([]byte(org + "/" + repo + "@" + ref))
	return hex.EncodeToString(sum[:])
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
