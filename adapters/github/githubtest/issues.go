package githubtest

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

const (
	docPulls    = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request"
	docIssues   = "https://docs.github.com/rest/issues/issues"
	docComments = "https://docs.github.com/rest/issues/comments#create-an-issue-comment"
)

func (s *Server) createPull(w http.ResponseWriter, req *http.Request, r *repo) {
	var in struct {
		Title, Head, Base, Body string
		Draft                   bool
	}
	if !decode(w, req, &in) {
		return
	}
	head := in.Head
	if owner, branch, ok := strings.Cut(head, ":"); ok && strings.EqualFold(owner, r.owner) {
		head = branch
	}
	headSHA, okHead := r.refs["heads/"+head]
	baseSHA, okBase := r.refs["heads/"+in.Base]
	switch {
	case in.Title == "":
		writeValidation(w, docPulls, fieldError{Resource: "PullRequest", Field: "title", Code: "missing_field"})
		return
	case !okBase:
		writeValidation(w, docPulls, fieldError{Resource: "PullRequest", Field: "base", Code: "invalid"})
		return
	case !okHead:
		writeValidation(w, docPulls, fieldError{Resource: "PullRequest", Field: "head", Code: "invalid"})
		return
	case r.isAncestor(headSHA, baseSHA):
		writeValidation(w, docPulls, fieldError{Resource: "PullRequest", Code: "custom",
			Message: "No commits between " + in.Base + " and " + head})
		return
	}
	for _, p := range r.pulls {
		if p.State == "open" && p.Head == head && p.Base == in.Base {
			writeValidation(w, docPulls, fieldError{Resource: "PullRequest", Code: "custom",
				Message: "A pull request already exists for " + r.owner + ":" + head + "."})
			return
		}
	}
	n := r.nextNumber
	r.nextNumber++
	p := &pull{id: s.nextID(), at: s.now(), PullRequest: PullRequest{
		Number: n, Title: in.Title, Body: in.Body, Head: head, Base: in.Base, HeadSHA: headSHA, State: "open",
		URL: "https://github.com/" + r.fullName() + "/pull/" + strconv.Itoa(n),
	}}
	r.pulls = append(r.pulls, p)
	writeJSON(w, http.StatusCreated, map[string]any{
		"id": p.id, "node_id": "PR_fake", "number": n, "state": "open", "title": p.Title, "body": p.Body,
		"draft": in.Draft, "merged": false, "html_url": p.URL,
		"url":        s.URL + "repos/" + r.fullName() + "/pulls/" + strconv.Itoa(n),
		"head":       map[string]any{"ref": head, "sha": headSHA, "label": r.owner + ":" + head},
		"base":       map[string]any{"ref": in.Base, "sha": baseSHA, "label": r.owner + ":" + in.Base},
		"created_at": timestamp(p.at),
	})
}

// issueJSON renders an issue, or a pull request as the issues API lists it.
func (s *Server) issueJSON(r *repo, is *issue, isPull bool) map[string]any {
	labels := []map[string]any{}
	for _, l := range is.Labels {
		labels = append(labels, map[string]any{"name": l, "color": "ededed"})
	}
	n := strconv.Itoa(is.Number)
	m := map[string]any{
		"id": is.id, "node_id": "I_fake", "number": is.Number, "title": is.Title, "body": is.Body,
		"state": is.State, "labels": labels, "html_url": is.URL,
		"url":        s.URL + "repos/" + r.fullName() + "/issues/" + n,
		"comments":   len(r.comments[is.Number]),
		"created_at": timestamp(is.at), "updated_at": timestamp(is.at),
	}
	if isPull {
		m["pull_request"] = map[string]any{
			"url":      s.URL + "repos/" + r.fullName() + "/pulls/" + n,
			"html_url": "https://github.com/" + r.fullName() + "/pull/" + n,
		}
	}
	return m
}

// listIssues is GET /repos/{o}/{r}/issues: issues and pull requests, filtered
// by state (default open) and labels (all must match), sorted by creation
// (desc by default).
func (s *Server) listIssues(w http.ResponseWriter, req *http.Request, r *repo) {
	q := req.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "open"
	}
	var want []string
	if l := q.Get("labels"); l != "" {
		want = strings.Split(l, ",")
	}
	type entry struct {
		is     *issue
		isPull bool
	}
	var all []entry
	for _, is := range r.issues {
		all = append(all, entry{is, false})
	}
	for _, p := range r.pulls {
		all = append(all, entry{&issue{id: p.id, at: p.at, Issue: Issue{
			Number: p.Number, Title: p.Title, Body: p.Body, Labels: p.Labels, State: p.State, URL: p.URL,
		}}, true})
	}
	var list []entry
	for _, e := range all {
		if state != "all" && e.is.State != state {
			continue
		}
		if !hasAll(e.is.Labels, want) {
			continue
		}
		list = append(list, e)
	}
	slices.SortFunc(list, func(a, b entry) int { return b.is.Number - a.is.Number })
	if q.Get("direction") == "asc" {
		slices.Reverse(list)
	}
	from, to := page(w, req, len(list))
	out := []map[string]any{}
	for _, e := range list[from:to] {
		out = append(out, s.issueJSON(r, e.is, e.isPull))
	}
	writeJSON(w, http.StatusOK, out)
}

func hasAll(have, want []string) bool {
	for _, l := range want {
		if !slices.ContainsFunc(have, func(h string) bool { return strings.EqualFold(h, l) }) {
			return false
		}
	}
	return true
}

func (s *Server) createIssue(w http.ResponseWriter, req *http.Request, r *repo) {
	var in struct {
		Title, Body string
		Labels      []string
	}
	if !decode(w, req, &in) {
		return
	}
	if in.Title == "" {
		writeValidation(w, docIssues+"#create-an-issue", fieldError{Resource: "Issue", Field: "title", Code: "missing_field"})
		return
	}
	n := r.nextNumber
	r.nextNumber++
	is := &issue{id: s.nextID(), at: s.now(), Issue: Issue{
		Number: n, Title: in.Title, Body: in.Body, Labels: slices.Clone(in.Labels), State: "open",
		URL: "https://github.com/" + r.fullName() + "/issues/" + strconv.Itoa(n),
	}}
	r.issues = append(r.issues, is)
	writeJSON(w, http.StatusCreated, s.issueJSON(r, is, false))
}

func (s *Server) createComment(w http.ResponseWriter, req *http.Request, r *repo) {
	n, err := strconv.Atoi(req.PathValue("number"))
	url := ""
	for _, is := range r.issues {
		if is.Number == n {
			url = is.URL
		}
	}
	for _, p := range r.pulls {
		if p.Number == n {
			url = p.URL
		}
	}
	if err != nil || url == "" {
		notFound(w, docComments)
		return
	}
	var in struct{ Body string }
	if !decode(w, req, &in) {
		return
	}
	if in.Body == "" {
		writeValidation(w, docComments, fieldError{Resource: "IssueComment", Field: "body", Code: "missing_field"})
		return
	}
	c := &comment{id: s.nextID(), body: in.Body, at: s.now()}
	r.comments[n] = append(r.comments[n], c)
	writeJSON(w, http.StatusCreated, map[string]any{
		"id": c.id, "node_id": "IC_fake", "body": c.body,
		"html_url":   url + "#issuecomment-" + itoa(c.id),
		"url":        s.URL + "repos/" + r.fullName() + "/issues/comments/" + itoa(c.id),
		"issue_url":  s.URL + "repos/" + r.fullName() + "/issues/" + strconv.Itoa(n),
		"created_at": timestamp(c.at), "updated_at": timestamp(c.at),
	})
}
