package githubtest

import (
	"cmp"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

const docDispatch = "https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event"

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// findWorkflow accepts a workflow file name or numeric id, as GitHub does.
func (r *repo) findWorkflow(idOrFile string) *workflow {
	if wf := r.workflows[idOrFile]; wf != nil {
		return wf
	}
	for _, wf := range r.workflows {
		if itoa(wf.id) == idOrFile {
			return wf
		}
	}
	return nil
}

func (s *Server) dispatch(w http.ResponseWriter, req *http.Request, r *repo) {
	wf := r.findWorkflow(req.PathValue("workflow"))
	if wf == nil {
		notFound(w, docDispatch)
		return
	}
	var in struct {
		Ref              string         `json:"ref"`
		Inputs           map[string]any `json:"inputs"`
		ReturnRunDetails *bool          `json:"return_run_details"`
	}
	if !decode(w, req, &in) {
		return
	}
	if s.rejectRunDetails && in.ReturnRunDetails != nil {
		writeError(w, http.StatusUnprocessableEntity, exampleMessage("ghes_return_run_details"), docDispatch)
		return
	}
	if in.Ref == "" {
		writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\n\"ref\" wasn't supplied.", docDispatch)
		return
	}
	if len(in.Inputs) > 25 {
		writeError(w, http.StatusUnprocessableEntity, "you may only define up to 25 `inputs` for a workflow_dispatch event", docDispatch)
		return
	}
	ref := strings.TrimPrefix(strings.TrimPrefix(in.Ref, "refs/heads/"), "refs/tags/")
	sha, ok := r.refs["heads/"+ref]
	if !ok {
		sha, ok = r.refs["tags/"+ref]
	}
	if !ok {
		writeError(w, http.StatusUnprocessableEntity, "No ref found for: "+in.Ref, docDispatch)
		return
	}
	now := s.now()
	wf.counter++
	rn := &run{
		id: s.nextID(), workflowID: wf.id, file: wf.File, name: wf.Name, number: wf.counter,
		branch: ref, sha: sha, event: "workflow_dispatch", status: "queued",
		createdAt: now, updatedAt: now, dispatched: true, perState: wf.PollsPerState,
		targetConclusion: wf.Conclusion, hiddenLists: wf.ListDelay,
	}
	r.runs = append(r.runs, rn)
	r.dispatches = append(r.dispatches, Dispatch{Workflow: wf.File, Ref: in.Ref, Inputs: maps.Clone(in.Inputs), RunID: rn.id})
	if !s.returnRunDetails || in.ReturnRunDetails == nil || !*in.ReturnRunDetails {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"workflow_run_id": rn.id,
		"run_url":         s.URL + "repos/" + r.fullName() + "/actions/runs/" + itoa(rn.id),
		"html_url":        "https://github.com/" + r.fullName() + "/actions/runs/" + itoa(rn.id),
	})
}

func (s *Server) runJSON(r *repo, rn *run) map[string]any {
	var conclusion any
	if rn.status == "completed" {
		conclusion = rn.conclusion
	}
	return map[string]any{
		"id": rn.id, "name": rn.name, "node_id": "WFR_fake", "display_title": rn.name,
		"head_branch": rn.branch, "head_sha": rn.sha, "path": ".github/workflows/" + rn.file,
		"run_number": rn.number, "run_attempt": 1, "event": rn.event,
		"status": rn.status, "conclusion": conclusion, "workflow_id": rn.workflowID,
		"url":        s.URL + "repos/" + r.fullName() + "/actions/runs/" + itoa(rn.id),
		"html_url":   "https://github.com/" + r.fullName() + "/actions/runs/" + itoa(rn.id),
		"created_at": timestamp(rn.createdAt), "updated_at": timestamp(rn.updatedAt),
		"run_started_at": timestamp(rn.createdAt),
		"repository":     map[string]any{"id": r.id, "full_name": r.fullName()},
	}
}

func (s *Server) getRun(w http.ResponseWriter, req *http.Request, r *repo) {
	for _, rn := range r.runs {
		if itoa(rn.id) == req.PathValue("id") {
			rn.advance(s.now())
			writeJSON(w, http.StatusOK, s.runJSON(r, rn))
			return
		}
	}
	notFound(w, "https://docs.github.com/rest/actions/workflow-runs#get-a-workflow-run")
}

// runStatuses are the values of the status query parameter that filter on
// status; the others filter on conclusion.
var runStatuses = map[string]bool{"completed": true, "in_progress": true, "queued": true, "requested": true, "waiting": true, "pending": true}

// listRuns serves both the repository's and one workflow's run list, newest
// first, with the branch, event, status, head_sha and created filters.
func (s *Server) listRuns(w http.ResponseWriter, req *http.Request, r *repo) {
	var wf *workflow
	if id := req.PathValue("workflow"); id != "" {
		if wf = r.findWorkflow(id); wf == nil {
			notFound(w, "https://docs.github.com/rest/actions/workflow-runs#list-workflow-runs-for-a-workflow")
			return
		}
	}
	q := req.URL.Query()
	created, ok := parseCreated(q.Get("created"))
	if !ok {
		writeError(w, http.StatusUnprocessableEntity, "Invalid created filter", "https://docs.github.com/rest/actions/workflow-runs")
		return
	}
	var runs []*run
	for _, rn := range r.runs {
		if rn.hiddenLists > 0 {
			rn.hiddenLists--
			continue
		}
		st := q.Get("status")
		switch {
		case wf != nil && rn.workflowID != wf.id,
			q.Get("branch") != "" && q.Get("branch") != rn.branch,
			q.Get("event") != "" && q.Get("event") != rn.event,
			q.Get("head_sha") != "" && q.Get("head_sha") != rn.sha,
			st != "" && runStatuses[st] && st != rn.status,
			st != "" && !runStatuses[st] && (rn.status != "completed" || st != rn.conclusion),
			!created(rn.createdAt):
			continue
		}
		runs = append(runs, rn)
	}
	slices.SortStableFunc(runs, func(a, b *run) int {
		return cmp.Or(b.createdAt.Compare(a.createdAt), cmp.Compare(b.id, a.id))
	})
	from, to := page(w, req, len(runs))
	list := []map[string]any{}
	for _, rn := range runs[from:to] {
		list = append(list, s.runJSON(r, rn))
	}
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(runs), "workflow_runs": list})
}

// parseCreated parses GitHub's date-range syntax as used by the created
// parameter: ">=T", ">T", "<=T", "<T", "A..B" or a single date or time.
func parseCreated(v string) (func(time.Time) bool, bool) {
	if v == "" {
		return func(time.Time) bool { return true }, true
	}
	parse := func(s string) (time.Time, bool) {
		for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t, true
			}
		}
		return time.Time{}, false
	}
	for _, op := range []string{">=", "<=", ">", "<"} {
		if rest, ok := strings.CutPrefix(v, op); ok {
			t, ok := parse(rest)
			if !ok {
				return nil, false
			}
			return func(c time.Time) bool {
				switch op {
				case ">=":
					return !c.Before(t)
				case "<=":
					return !c.After(t)
				case ">":
					return c.After(t)
				}
				return c.Before(t)
			}, true
		}
	}
	if a, b, ok := strings.Cut(v, ".."); ok {
		ta, oka := parse(a)
		tb, okb := parse(b)
		if !oka || !okb {
			return nil, false
		}
		return func(c time.Time) bool { return !c.Before(ta) && !c.After(tb) }, true
	}
	t, ok := parse(v)
	if !ok {
		return nil, false
	}
	return func(c time.Time) bool { return !c.Before(t) && c.Before(t.Add(24*time.Hour)) }, true
}
