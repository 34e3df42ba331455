package githubtest

import (
	"net/http"
)

// combinedStatus is GET /repos/{o}/{r}/commits/{ref}/status: the latest
// status per context, paginated, with GitHub's combined state (pending when
// there are none).
func (s *Server) combinedStatus(w http.ResponseWriter, req *http.Request, r *repo) {
	sha, ok := r.resolve(req.PathValue("ref"))
	if !ok {
		notFound(w, "https://docs.github.com/rest/commits/statuses#get-the-combined-status-for-a-specific-reference")
		return
	}
	latest := map[string]*status{}
	var order []*status
	all := r.statuses[sha]
	for i := len(all) - 1; i >= 0; i-- { // newest first, as GitHub lists them
		if latest[all[i].context] == nil {
			latest[all[i].context] = all[i]
			order = append(order, all[i])
		}
	}
	state := "success"
	if len(order) == 0 {
		state = "pending"
	}
	for _, st := range order {
		switch st.state {
		case "error", "failure":
			state = "failure"
		case "pending":
			if state != "failure" {
				state = "pending"
			}
		}
	}
	from, to := page(w, req, len(order))
	list := []map[string]any{}
	for _, st := range order[from:to] {
		list = append(list, map[string]any{
			"id": st.id, "node_id": "SC_fake", "state": st.state, "context": st.context,
			"description": st.description, "target_url": st.target,
			"created_at": timestamp(st.at), "updated_at": timestamp(st.at),
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"state": state, "sha": sha, "total_count": len(order), "statuses": list,
		"repository": s.repoJSON(r),
		"commit_url": s.URL + "repos/" + r.fullName() + "/commits/" + sha,
		"url":        s.URL + "repos/" + r.fullName() + "/commits/" + sha + "/status",
	})
}

// listCheckRuns is GET /repos/{o}/{r}/commits/{ref}/check-runs; filter=latest
// (the default) keeps the newest run of each name.
func (s *Server) listCheckRuns(w http.ResponseWriter, req *http.Request, r *repo) {
	sha, ok := r.resolve(req.PathValue("ref"))
	if !ok {
		writeError(w, http.StatusUnprocessableEntity, "No commit found for SHA: "+req.PathValue("ref"),
			"https://docs.github.com/rest/checks/runs#list-check-runs-for-a-git-reference")
		return
	}
	q := req.URL.Query()
	all := r.checkRuns[sha]
	seen := map[string]bool{}
	var runs []*checkRun
	for i := len(all) - 1; i >= 0; i-- {
		cr := all[i]
		if q.Get("filter") != "all" && seen[cr.name] {
			continue
		}
		seen[cr.name] = true
		if st := q.Get("status"); st != "" && st != cr.status {
			continue
		}
		if n := q.Get("check_name"); n != "" && n != cr.name {
			continue
		}
		runs = append(runs, cr)
	}
	from, to := page(w, req, len(runs))
	list := []map[string]any{}
	for _, cr := range runs[from:to] {
		m := map[string]any{
			"id": cr.id, "node_id": "CR_fake", "name": cr.name, "head_sha": cr.sha,
			"status": cr.status, "conclusion": nil, "started_at": timestamp(cr.startedAt), "completed_at": nil,
			"html_url": "https://github.com/" + r.fullName() + "/runs/" + itoa(cr.id),
			"url":      s.URL + "repos/" + r.fullName() + "/check-runs/" + itoa(cr.id),
			"app":      map[string]any{"id": 15368, "slug": "github-actions", "name": "GitHub Actions"},
			"output":   map[string]any{"title": nil, "summary": nil},
		}
		if cr.status == "completed" {
			m["conclusion"], m["completed_at"] = cr.conclusion, timestamp(cr.completedAt)
		}
		list = append(list, m)
	}
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(runs), "check_runs": list})
}
