package verceltest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// routes registers the documented endpoints; anything else is Vercel's JSON 404.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v9/projects/{idOrName}", s.getProject)
	mux.HandleFunc("GET /v6/deployments", s.listDeployments)
	mux.HandleFunc("GET /v13/deployments/{idOrUrl}", s.getDeployment)
	mux.HandleFunc("POST /v13/deployments", s.createDeployment)
	mux.HandleFunc("GET /v3/deployments/{idOrUrl}/events", s.deploymentEvents)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "The requested API endpoint was not found")
	})
	return mux
}

func (s *Server) getProject(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.findProject(r.PathValue("idOrName"))
	if p == nil {
		writeError(w, http.StatusNotFound, "not_found", "Project not found")
		return
	}
	out := map[string]any{"id": p.ID, "name": p.Name, "accountId": p.AccountID, "framework": nullable(p.Framework)}
	if p.Org != "" {
		switch linkType(p) {
		case "bitbucket":
			out["link"] = map[string]any{"type": "bitbucket", "owner": p.Org, "slug": p.Repo, "productionBranch": p.ProductionBranch}
		case "gitlab":
			out["link"] = map[string]any{"type": "gitlab", "projectNamespace": p.Org, "projectName": p.Repo,
				"projectId": strconv.FormatInt(p.RepoID, 10), "productionBranch": p.ProductionBranch}
		default:
			out["link"] = map[string]any{
				"type": linkType(p), "org": p.Org, "repo": p.Repo, "repoId": p.RepoID,
				"productionBranch": p.ProductionBranch,
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "bad_request", "Invalid request: `limit` should be a positive number")
			return
		}
		limit = min(n, 100)
	}
	if q.Get("target") == "preview" {
		// Vercel documents production (or a custom environment) here;
		// preview deployments have target null.
		writeError(w, http.StatusBadRequest, "bad_request", "Invalid request: `target` should be \"production\" or a custom environment")
		return
	}
	until, _ := strconv.ParseInt(q.Get("until"), 10, 64)
	since, _ := strconv.ParseInt(q.Get("since"), 10, 64)

	s.mu.Lock()
	defer s.mu.Unlock()
	projectID := q.Get("projectId")
	if p := s.findProject(projectID); p != nil {
		projectID = p.ID
	}
	var match []*Deployment
	for _, d := range slices.Backward(s.deployments) { // newest first
		ms := d.CreatedAt.UnixMilli()
		switch {
		case projectID != "" && d.ProjectID != projectID:
		case q.Get("target") != "" && d.Target != q.Get("target"):
		case until != 0 && ms >= until:
		case since != 0 && ms <= since:
		default:
			match = append(match, d)
		}
	}
	page := match[:min(limit, len(match))]
	items := make([]map[string]any, 0, len(page))
	for _, d := range page {
		items = append(items, s.listJSON(d))
	}
	pagination := map[string]any{"count": len(page), "next": nil, "prev": nil}
	if len(page) > 0 {
		pagination["prev"] = page[0].CreatedAt.UnixMilli()
		if len(match) > len(page) {
			pagination["next"] = page[len(page)-1].CreatedAt.UnixMilli()
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"deployments": items, "pagination": pagination})
}

// getDeployment answers the v13 shape; each GET moves a building deployment
// one state on (QUEUED -> BUILDING -> READY/ERROR/CANCELED).
func (s *Server) getDeployment(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.findDeployment(r.PathValue("idOrUrl"))
	if d == nil {
		writeError(w, http.StatusNotFound, "not_found", "Deployment not found")
		return
	}
	d.advance()
	writeJSON(w, http.StatusOK, s.detailJSON(d))
}

// createBody is the documented subset of POST /v13/deployments opsd sends.
type createBody struct {
	Name         string            `json:"name"`
	Project      string            `json:"project"`
	Target       string            `json:"target"`
	DeploymentID string            `json:"deploymentId"`
	Meta         map[string]string `json:"meta"`
	GitSource    *struct {
		Type      string `json:"type"`
		Ref       string `json:"ref"`
		SHA       string `json:"sha"`
		Org       string `json:"org"`
		Repo      string `json:"repo"`
		RepoID    any    `json:"repoId"`
		Owner     string `json:"owner"`
		Slug      string `json:"slug"`
		ProjectID any    `json:"projectId"`
	} `json:"gitSource"`
}

func linkType(p *Project) string {
	if p.LinkType == "" {
		return "github"
	}
	return p.LinkType
}

var shaRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

func (s *Server) createDeployment(w http.ResponseWriter, r *http.Request) {
	var b createBody
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "Invalid JSON body")
		return
	}
	switch {
	case b.Name == "":
		writeError(w, http.StatusBadRequest, "bad_request", "Invalid request: missing required property `name`.")
		return
	case b.Target != "" && b.Target != "production" && b.Target != "staging":
		writeError(w, http.StatusBadRequest, "bad_request", "Invalid request: `target` should be equal to one of the allowed values \"staging, production\".")
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.findProject(firstNonEmpty(b.Project, b.Name))
	if p == nil {
		writeError(w, http.StatusNotFound, "not_found", "Project not found")
		return
	}
	d := Deployment{Name: p.Name, ProjectID: p.ID, Target: b.Target, State: "QUEUED", Meta: b.Meta}
	switch {
	case b.DeploymentID != "":
		src := s.findDeployment(b.DeploymentID)
		if src == nil {
			writeError(w, http.StatusNotFound, "not_found", "Deployment not found")
			return
		}
		d.Meta = mergeMeta(src.Meta, b.Meta)
		d.Meta["action"] = "redeploy"
		d.Meta["originalDeploymentId"] = src.ID
	case b.GitSource != nil:
		gs := b.GitSource
		var ok bool
		switch gs.Type {
		case "github", "github-limited", "github-custom-host":
			ok = (gs.Org != "" && gs.Repo != "") || gs.RepoID != nil
		case "bitbucket":
			ok, gs.Org, gs.Repo = gs.Owner != "" && gs.Slug != "", gs.Owner, gs.Slug
		case "gitlab":
			ok = gs.ProjectID != nil
		}
		if !ok || gs.Ref == "" || (p.Org != "" && gs.Type != linkType(p)) {
			writeError(w, http.StatusBadRequest, "incorrect_git_source_info",
				fmt.Sprintf("The provided gitSource is invalid: type %q needs ref and the repository fields of that type, and must match the project's link (%s)", gs.Type, linkType(p)))
			return
		}
		org, repo := firstNonEmpty(gs.Org, p.Org), firstNonEmpty(gs.Repo, p.Repo)
		sha := gs.SHA
		if sha == "" && shaRE.MatchString(gs.Ref) {
			sha = gs.Ref
		}
		if sha == "" {
			sha = fakeSHA(org, repo, gs.Ref)
		}
		d.Meta = mergeMeta(b.Meta, map[string]string{
			"githubCommitRef": gs.Ref, "githubCommitSha": sha, "githubOrg": org, "githubRepo": repo,
			"githubCommitOrg": org, "githubCommitRepo": repo,
		})
	default:
		writeError(w, http.StatusBadRequest, "missing_files", "Missing files")
		return
	}
	stored := s.store(d)
	stored.pending = []string{"BUILDING", s.outcome}
	writeJSON(w, http.StatusOK, s.detailJSON(stored))
}

func (s *Server) deploymentEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("follow") == "1" {
		writeError(w, http.StatusBadRequest, "bad_request", "verceltest: follow=1 (streaming) is not supported")
		return
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "Invalid request: `limit` should be a number")
			return
		}
		limit = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.findDeployment(r.PathValue("idOrUrl"))
	if d == nil {
		writeError(w, http.StatusNotFound, "not_found", "Deployment not found")
		return
	}
	events := slices.Clone(d.Events)
	if q.Get("direction") == "backward" {
		slices.Reverse(events)
	}
	if limit >= 0 && limit < len(events) {
		events = events[:limit]
	}
	out := make([]map[string]any, 0, len(events))
	for i, e := range events {
		ms := e.Created.UnixMilli()
		if s.flatEvents {
			out = append(out, map[string]any{
				"type": e.Type, "created": ms, "date": ms, "deploymentId": d.ID, "id": strconv.Itoa(i),
				"serial": strconv.FormatInt(ms, 10), "text": e.Text, "info": map[string]any{"type": "build", "name": "bld_fake"},
			})
			continue
		}
		out = append(out, map[string]any{
			"type":    e.Type,
			"created": ms,
			"payload": map[string]any{
				"deploymentId": d.ID, "id": strconv.Itoa(i), "date": ms, "serial": strconv.FormatInt(ms, 10), "text": e.Text,
			},
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// detailJSON is the GET/POST /v13/deployments shape.
func (s *Server) detailJSON(d *Deployment) map[string]any {
	out := map[string]any{
		"id": d.ID, "url": d.URL, "name": d.Name, "projectId": d.ProjectID,
		"readyState": d.State, "status": d.State, "target": nullable(d.Target),
		"inspectorUrl": s.inspectorURL(d), "createdAt": d.CreatedAt.UnixMilli(),
		"meta": d.Meta, "type": "LAMBDAS", "version": 2, "regions": []string{"iad1"},
		"aliasAssigned": d.State == "READY", "alias": []string{},
		"creator": map[string]string{"uid": "user_fake", "username": "fake"},
	}
	if d.ErrorCode != "" {
		out["errorCode"], out["errorMessage"] = d.ErrorCode, d.ErrorMessage
	}
	return out
}

// listJSON is the GET /v6/deployments item shape.
func (s *Server) listJSON(d *Deployment) map[string]any {
	ms := d.CreatedAt.UnixMilli()
	return map[string]any{
		"uid": d.ID, "name": d.Name, "url": d.URL, "projectId": d.ProjectID,
		"created": ms, "createdAt": ms, "state": d.State, "readyState": d.State,
		"type": "LAMBDAS", "target": nullable(d.Target), "inspectorUrl": s.inspectorURL(d),
		"meta": d.Meta, "source": "git", "creator": map[string]string{"uid": "user_fake", "username": "fake"},
	}
}

func (s *Server) inspectorURL(d *Deployment) string {
	return "https://vercel.com/" + firstNonEmpty(s.TeamID, "fake") + "/" + d.Name + "/" + strings.TrimPrefix(d.ID, "dpl_")
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func mergeMeta(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}
