package githubtest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// AddRepo creates repository fullName ("owner/name") whose defaultBranch
// holds one commit with a README.md, and returns that commit's sha.
func (s *Server) AddRepo(fullName, defaultBranch string) string {
	owner, name, ok := strings.Cut(fullName, "/")
	if !ok {
		panic(fmt.Sprintf("githubtest: repository %q is not owner/name", fullName))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &repo{
		id: s.nextID(), owner: owner, name: name, defaultBranch: defaultBranch,
		refs: map[string]string{}, commits: map[string]*commit{}, trees: map[string]map[string]string{},
		blobs: map[string]string{}, statuses: map[string][]*status{}, checkRuns: map[string][]*checkRun{},
		workflows: map[string]*workflow{}, comments: map[int][]*comment{}, nextNumber: 1,
	}
	s.repos[strings.ToLower(fullName)] = r
	sha := s.writeCommit(r, "Initial commit", nil, map[string]string{"README.md": "# " + name + "\n"})
	r.refs["heads/"+defaultBranch] = sha
	return sha
}

// mustRepo returns a seeded repository; the caller holds s.mu.
func (s *Server) mustRepo(fullName string) *repo {
	r := s.repos[strings.ToLower(fullName)]
	if r == nil {
		panic(fmt.Sprintf("githubtest: no repository %q: call AddRepo first", fullName))
	}
	return r
}

// AddCommit commits files (merged over the branch head's tree) to an existing
// branch and returns the new commit's sha.
func (s *Server) AddCommit(fullName, branch, message string, files map[string]string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.mustRepo(fullName)
	head, ok := r.refs["heads/"+branch]
	if !ok {
		panic(fmt.Sprintf("githubtest: no branch %q in %s", branch, fullName))
	}
	tree := maps.Clone(r.trees[r.commits[head].tree])
	maps.Copy(tree, files)
	sha := s.writeCommit(r, message, []string{head}, tree)
	r.refs["heads/"+branch] = sha
	return sha
}

// SetBranch points branch at sha, creating it if needed.
func (s *Server) SetBranch(fullName, branch, sha string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustRepo(fullName).refs["heads/"+branch] = sha
}

// SetTag points tag at sha, creating it if needed.
func (s *Server) SetTag(fullName, tag, sha string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustRepo(fullName).refs["tags/"+tag] = sha
}

// SetStatus adds a commit status (state: error, failure, pending, success);
// the latest status of a context wins, as on GitHub.
func (s *Server) SetStatus(fullName, sha, context, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.mustRepo(fullName)
	r.statuses[sha] = append(r.statuses[sha], &status{id: s.nextID(), state: state, context: context, at: s.now()})
}

// AddCheckRun adds a check run (status: queued, in_progress, completed;
// conclusion for completed runs: success, failure, neutral, cancelled,
// skipped, timed_out, action_required).
func (s *Server) AddCheckRun(fullName, sha, name, status, conclusion string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.mustRepo(fullName)
	cr := &checkRun{id: s.nextID(), name: name, sha: sha, status: status, startedAt: s.now()}
	if status == "completed" {
		cr.conclusion, cr.completedAt = conclusion, s.now()
	}
	r.checkRuns[sha] = append(r.checkRuns[sha], cr)
}

// AddWorkflow adds a workflow that can be dispatched, and returns its id.
func (s *Server) AddWorkflow(fullName string, wf Workflow) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if wf.Name == "" {
		wf.Name = wf.File
	}
	if wf.Conclusion == "" {
		wf.Conclusion = "success"
	}
	if wf.PollsPerState <= 0 {
		wf.PollsPerState = 1
	}
	w := &workflow{Workflow: wf, id: s.nextID()}
	s.mustRepo(fullName).workflows[wf.File] = w
	return w.id
}

// AddRun seeds a workflow run and returns its id.
func (s *Server) AddRun(fullName string, rs Run) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.mustRepo(fullName)
	wf := r.workflows[rs.Workflow]
	if wf == nil {
		panic(fmt.Sprintf("githubtest: no workflow %q in %s: call AddWorkflow first", rs.Workflow, fullName))
	}
	if rs.SHA == "" {
		rs.SHA = r.refs["heads/"+rs.Branch]
	}
	if rs.Event == "" {
		rs.Event = "push"
	}
	if rs.Status == "" {
		rs.Status = "completed"
	}
	if rs.Status == "completed" && rs.Conclusion == "" {
		rs.Conclusion = "success"
	}
	if rs.CreatedAt.IsZero() {
		rs.CreatedAt = s.now()
	}
	wf.counter++
	rn := &run{
		id: s.nextID(), workflowID: wf.id, file: wf.File, name: wf.Name, number: wf.counter,
		branch: rs.Branch, sha: rs.SHA, event: rs.Event, status: rs.Status, conclusion: rs.Conclusion,
		createdAt: rs.CreatedAt.UTC(), updatedAt: rs.CreatedAt.UTC(),
	}
	r.runs = append(r.runs, rn)
	return rn.id
}

// Branch returns the sha a branch points at.
func (s *Server) Branch(fullName, branch string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sha, ok := s.mustRepo(fullName).refs["heads/"+branch]
	return sha, ok
}

// Commit returns a commit with its full tree.
func (s *Server) Commit(fullName, sha string) (Commit, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.mustRepo(fullName)
	c := r.commits[sha]
	if c == nil {
		return Commit{}, false
	}
	return Commit{SHA: c.sha, Message: c.message, Parents: slices.Clone(c.parents), Files: maps.Clone(r.trees[c.tree])}, true
}

// PullRequests returns the repository's pull requests, oldest first.
func (s *Server) PullRequests(fullName string) []PullRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []PullRequest
	for _, p := range s.mustRepo(fullName).pulls {
		c := p.PullRequest
		c.Labels = slices.Clone(c.Labels)
		out = append(out, c)
	}
	return out
}

// Issues returns the repository's issues (not pull requests), oldest first.
func (s *Server) Issues(fullName string) []Issue {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Issue
	for _, is := range s.mustRepo(fullName).issues {
		c := is.Issue
		c.Labels = slices.Clone(c.Labels)
		out = append(out, c)
	}
	return out
}

// AddLabels adds labels to an issue or pull request.
func (s *Server) AddLabels(fullName string, number int, labels ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.mustRepo(fullName)
	for _, is := range r.issues {
		if is.Number == number {
			is.Labels = append(is.Labels, labels...)
		}
	}
	for _, p := range r.pulls {
		if p.Number == number {
			p.Labels = append(p.Labels, labels...)
		}
	}
}

// CloseIssue closes an issue.
func (s *Server) CloseIssue(fullName string, number int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, is := range s.mustRepo(fullName).issues {
		if is.Number == number {
			is.State = "closed"
		}
	}
}

// Comments returns the bodies of the comments on an issue or pull request.
func (s *Server) Comments(fullName string, number int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.mustRepo(fullName).comments[number] {
		out = append(out, c.body)
	}
	return out
}

// Dispatches returns the workflow dispatches received, oldest first.
func (s *Server) Dispatches(fullName string) []Dispatch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mustRepo(fullName).dispatches)
}

// RunStatus returns a run's current status and conclusion without advancing it.
func (s *Server) RunStatus(fullName string, id int64) (status, conclusion string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rn := range s.mustRepo(fullName).runs {
		if rn.id == id {
			return rn.status, rn.conclusion, true
		}
	}
	return "", "", false
}

// timestamp formats t as GitHub does (ISO 8601, UTC, whole seconds).
func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
