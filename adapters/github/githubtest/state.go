package githubtest

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// repo is one in-memory repository. Access only with Server.mu held.
type repo struct {
	id            int64
	owner, name   string
	defaultBranch string
	refs          map[string]string // "heads/main", "tags/v1" -> commit sha
	commits       map[string]*commit
	trees         map[string]map[string]string // tree sha -> path -> content
	blobs         map[string]string
	statuses      map[string][]*status // commit sha -> statuses, oldest first
	checkRuns     map[string][]*checkRun
	workflows     map[string]*workflow // file name -> workflow
	runs          []*run
	nextNumber    int // issues and pull requests share GitHub's numbering
	pulls         []*pull
	issues        []*issue
	comments      map[int][]*comment
	dispatches    []Dispatch
}

func (r *repo) fullName() string { return r.owner + "/" + r.name }

type commit struct {
	sha, tree, message string
	parents            []string
	at                 time.Time
}

// Commit is a commit as the fake stores it.
type Commit struct {
	SHA     string
	Message string
	Parents []string
	Files   map[string]string // the full tree: path -> content
}

// Workflow configures a GitHub Actions workflow of a fake repository.
type Workflow struct {
	File string // file name under .github/workflows, e.g. "deploy.yml"
	Name string // display name; default File
	// Conclusion of runs started by a dispatch; default "success".
	Conclusion string
	// PollsPerState is how many GETs of a dispatched run answer "queued",
	// then as many "in_progress", before it is "completed"; default 1.
	PollsPerState int
	// ListDelay is how many run list requests do not yet show a dispatched
	// run, as GitHub creates runs asynchronously; default 0.
	ListDelay int
}

type workflow struct {
	Workflow
	id      int64
	counter int
}

// Run seeds an existing workflow run with AddRun.
type Run struct {
	Workflow   string // file name of a workflow added with AddWorkflow
	Branch     string // head_branch
	SHA        string // head_sha; default the branch head
	Event      string // default "push"
	Status     string // default "completed"
	Conclusion string // for completed runs; default "success"
	CreatedAt  time.Time
}

type run struct {
	id, workflowID   int64
	file, name       string
	number           int
	branch, sha      string
	event            string
	status           string
	conclusion       string
	createdAt        time.Time
	updatedAt        time.Time
	dispatched       bool // progresses on GET
	polls, perState  int
	targetConclusion string
	hiddenLists      int
}

// Dispatch is a recorded workflow dispatch.
type Dispatch struct {
	Workflow string
	Ref      string
	Inputs   map[string]any
	RunID    int64
}

type status struct {
	id                                  int64
	state, context, description, target string
	at                                  time.Time
}

type checkRun struct {
	id                     int64
	name, sha              string
	status, conclusion     string
	startedAt, completedAt time.Time
}

// PullRequest is a pull request as the fake stores it.
type PullRequest struct {
	Number      int
	Title, Body string
	Head, Base  string // branch names
	Labels      []string
	HeadSHA     string
	State       string
	URL         string // html_url
}

type pull struct {
	PullRequest
	id int64
	at time.Time
}

// Issue is an issue as the fake stores it.
type Issue struct {
	Number      int
	Title, Body string
	Labels      []string
	State       string // open or closed
	URL         string // html_url
}

type issue struct {
	Issue
	id int64
	at time.Time
}

type comment struct {
	id   int64
	body string
	at   time.Time
}

// hash returns a 40-hex-digit object id, unique within the server.
func (s *Server) hash(kind string, parts ...string) string {
	s.seq++
	h := sha1.Sum([]byte(fmt.Sprintf("%s %d %s", kind, s.seq, strings.Join(parts, "\x00"))))
	return hex.EncodeToString(h[:])
}

func (s *Server) nextID() int64 { s.seq++; return s.seq }

// writeCommit stores a commit whose tree is files; the caller holds s.mu.
func (s *Server) writeCommit(r *repo, message string, parents []string, files map[string]string) string {
	tree := s.hash("tree", slices.Sorted(maps.Keys(files))...)
	r.trees[tree] = maps.Clone(files)
	sha := s.hash("commit", message, tree)
	r.commits[sha] = &commit{sha: sha, tree: tree, message: message, parents: parents, at: s.now()}
	return sha
}

// resolve maps a branch, tag, "heads/x", "tags/x", full or abbreviated (7+)
// sha to a commit sha.
func (r *repo) resolve(ref string) (string, bool) {
	ref = strings.TrimPrefix(ref, "refs/")
	for _, k := range []string{"heads/" + ref, "tags/" + ref, ref} {
		if sha, ok := r.refs[k]; ok {
			return sha, true
		}
	}
	if _, ok := r.commits[ref]; ok {
		return ref, true
	}
	if len(ref) >= 7 {
		var found string
		for sha := range r.commits {
			if strings.HasPrefix(sha, ref) {
				if found != "" {
					return "", false // ambiguous
				}
				found = sha
			}
		}
		return found, found != ""
	}
	return "", false
}

// isAncestor reports whether a is b or an ancestor of b.
func (r *repo) isAncestor(a, b string) bool {
	seen := map[string]bool{}
	stack := []string{b}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if c == a {
			return true
		}
		if seen[c] || r.commits[c] == nil {
			continue
		}
		seen[c] = true
		stack = append(stack, r.commits[c].parents...)
	}
	return false
}

// currentStatus advances a dispatched run by one GET.
func (rn *run) advance(now time.Time) {
	if !rn.dispatched || rn.status == "completed" {
		return
	}
	rn.polls++
	switch {
	case rn.polls <= rn.perState:
		rn.status = "queued"
	case rn.polls <= 2*rn.perState:
		rn.status = "in_progress"
	default:
		rn.status = "completed"
		rn.conclusion = rn.targetConclusion
	}
	rn.updatedAt = now
}
