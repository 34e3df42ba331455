package githubtest

import (
	"encoding/base64"
	"maps"
	"net/http"
	"strings"
)

const (
	docRepos   = "https://docs.github.com/rest/repos/repos#get-a-repository"
	docCommit  = "https://docs.github.com/rest/commits/commits#get-a-commit"
	docRefs    = "https://docs.github.com/rest/git/refs"
	docTrees   = "https://docs.github.com/rest/git/trees#create-a-tree"
	docCommits = "https://docs.github.com/rest/git/commits"
	docBlobs   = "https://docs.github.com/rest/git/blobs#create-a-blob"
)

func (s *Server) routes() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /repos/{owner}/{repo}", s.repo(s.getRepo))
	m.HandleFunc("GET /repos/{owner}/{repo}/commits/{ref...}", s.repo(s.getCommit))
	m.HandleFunc("GET /repos/{owner}/{repo}/commits/{ref}/status", s.repo(s.combinedStatus))
	m.HandleFunc("GET /repos/{owner}/{repo}/commits/{ref}/check-runs", s.repo(s.listCheckRuns))
	m.HandleFunc("GET /repos/{owner}/{repo}/git/ref/{ref...}", s.repo(s.getRef))
	m.HandleFunc("POST /repos/{owner}/{repo}/git/refs", s.repo(s.createRef))
	m.HandleFunc("PATCH /repos/{owner}/{repo}/git/refs/{ref...}", s.repo(s.updateRef))
	m.HandleFunc("GET /repos/{owner}/{repo}/git/commits/{sha}", s.repo(s.getGitCommit))
	m.HandleFunc("POST /repos/{owner}/{repo}/git/commits", s.repo(s.createCommit))
	m.HandleFunc("POST /repos/{owner}/{repo}/git/trees", s.repo(s.createTree))
	m.HandleFunc("POST /repos/{owner}/{repo}/git/blobs", s.repo(s.createBlob))
	m.HandleFunc("POST /repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches", s.repo(s.dispatch))
	m.HandleFunc("GET /repos/{owner}/{repo}/actions/workflows/{workflow}/runs", s.repo(s.listRuns))
	m.HandleFunc("GET /repos/{owner}/{repo}/actions/runs", s.repo(s.listRuns))
	m.HandleFunc("GET /repos/{owner}/{repo}/actions/runs/{id}", s.repo(s.getRun))
	m.HandleFunc("POST /repos/{owner}/{repo}/pulls", s.repo(s.createPull))
	m.HandleFunc("GET /repos/{owner}/{repo}/issues", s.repo(s.listIssues))
	m.HandleFunc("POST /repos/{owner}/{repo}/issues", s.repo(s.createIssue))
	m.HandleFunc("POST /repos/{owner}/{repo}/issues/{number}/comments", s.repo(s.createComment))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		notFound(w, "https://docs.github.com/rest")
	})
	return s.serve(m)
}

// repo wraps a handler with the repository lookup (404 when unknown) and
// holds s.mu for the handler's duration.
func (s *Server) repo(h func(http.ResponseWriter, *http.Request, *repo)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		rp := s.repos[strings.ToLower(r.PathValue("owner")+"/"+r.PathValue("repo"))]
		if rp == nil {
			notFound(w, docRepos)
			return
		}
		h(w, r, rp)
	}
}

func (s *Server) repoJSON(r *repo) map[string]any {
	return map[string]any{
		"id": r.id, "node_id": "R_fake", "name": r.name, "full_name": r.fullName(), "private": true,
		"owner":          map[string]any{"login": r.owner, "id": 1, "type": "Organization"},
		"html_url":       "https://github.com/" + r.fullName(),
		"url":            s.URL + "repos/" + r.fullName(),
		"default_branch": r.defaultBranch,
	}
}

func (s *Server) getRepo(w http.ResponseWriter, _ *http.Request, r *repo) {
	writeJSON(w, http.StatusOK, s.repoJSON(r))
}

func (s *Server) commitJSON(r *repo, c *commit) map[string]any {
	parents := []map[string]any{}
	for _, p := range c.parents {
		parents = append(parents, map[string]any{"sha": p, "url": s.URL + "repos/" + r.fullName() + "/git/commits/" + p})
	}
	who := map[string]any{"name": "opsd", "email": "opsd@example.com", "date": timestamp(c.at)}
	return map[string]any{
		"sha": c.sha, "node_id": "C_fake", "message": c.message,
		"url":      s.URL + "repos/" + r.fullName() + "/git/commits/" + c.sha,
		"html_url": "https://github.com/" + r.fullName() + "/commit/" + c.sha,
		"author":   who, "committer": who,
		"tree":    map[string]any{"sha": c.tree, "url": s.URL + "repos/" + r.fullName() + "/git/trees/" + c.tree},
		"parents": parents,
	}
}

// getCommit is GET /repos/{o}/{r}/commits/{ref}; with the sha media type it
// answers the bare sha.
func (s *Server) getCommit(w http.ResponseWriter, req *http.Request, r *repo) {
	ref := req.PathValue("ref")
	sha, ok := r.resolve(ref)
	if !ok {
		writeError(w, http.StatusUnprocessableEntity, "No commit found for SHA: "+ref, docCommit)
		return
	}
	if strings.Contains(req.Header.Get("Accept"), ".sha") {
		w.Header().Set("Content-Type", "application/vnd.github.sha; charset=utf-8")
		w.Header().Set("ETag", `"`+sha+`"`)
		_, _ = w.Write([]byte(sha))
		return
	}
	c := r.commits[sha]
	body := map[string]any{
		"sha": sha, "html_url": "https://github.com/" + r.fullName() + "/commit/" + sha,
		"commit":  map[string]any{"message": c.message, "tree": map[string]any{"sha": c.tree}},
		"parents": s.commitJSON(r, c)["parents"],
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) refJSON(r *repo, name, sha string) map[string]any {
	return map[string]any{
		"ref": "refs/" + name, "node_id": "REF_fake",
		"url":    s.URL + "repos/" + r.fullName() + "/git/refs/" + name,
		"object": map[string]any{"type": "commit", "sha": sha, "url": s.URL + "repos/" + r.fullName() + "/git/commits/" + sha},
	}
}

func (s *Server) getRef(w http.ResponseWriter, req *http.Request, r *repo) {
	name := req.PathValue("ref")
	sha, ok := r.refs[name]
	if !ok {
		notFound(w, docRefs+"#get-a-reference")
		return
	}
	writeJSON(w, http.StatusOK, s.refJSON(r, name, sha))
}

func (s *Server) createRef(w http.ResponseWriter, req *http.Request, r *repo) {
	var in struct{ Ref, SHA string }
	if !decode(w, req, &in) {
		return
	}
	name, ok := strings.CutPrefix(in.Ref, "refs/")
	doc := docRefs + "#create-a-reference"
	switch {
	case !ok || strings.Count(name, "/") < 1 || strings.HasSuffix(name, "/"):
		writeError(w, http.StatusUnprocessableEntity, "Reference name is invalid", doc)
	case r.commits[in.SHA] == nil:
		writeError(w, http.StatusUnprocessableEntity, "Object does not exist", doc)
	case r.refs[name] != "":
		writeError(w, http.StatusUnprocessableEntity, "Reference already exists", doc)
	default:
		r.refs[name] = in.SHA
		writeJSON(w, http.StatusCreated, s.refJSON(r, name, in.SHA))
	}
}

func (s *Server) updateRef(w http.ResponseWriter, req *http.Request, r *repo) {
	var in struct {
		SHA   string
		Force bool
	}
	if !decode(w, req, &in) {
		return
	}
	name := req.PathValue("ref")
	cur, exists := r.refs[name]
	doc := docRefs + "#update-a-reference"
	switch {
	case !exists:
		writeError(w, http.StatusUnprocessableEntity, "Reference does not exist", doc)
	case r.commits[in.SHA] == nil:
		writeError(w, http.StatusUnprocessableEntity, "Object does not exist", doc)
	case !in.Force && !r.isAncestor(cur, in.SHA):
		writeError(w, http.StatusUnprocessableEntity, "Update is not a fast forward", doc)
	default:
		r.refs[name] = in.SHA
		writeJSON(w, http.StatusOK, s.refJSON(r, name, in.SHA))
	}
}

func (s *Server) getGitCommit(w http.ResponseWriter, req *http.Request, r *repo) {
	c := r.commits[req.PathValue("sha")]
	if c == nil {
		notFound(w, docCommits+"#get-a-commit-object")
		return
	}
	writeJSON(w, http.StatusOK, s.commitJSON(r, c))
}

func (s *Server) createBlob(w http.ResponseWriter, req *http.Request, r *repo) {
	var in struct{ Content, Encoding string }
	if !decode(w, req, &in) {
		return
	}
	content := in.Content
	if in.Encoding == "base64" {
		b, err := base64.StdEncoding.DecodeString(in.Content)
		if err != nil {
			writeError(w, http.StatusUnprocessableEntity, "content is not valid Base64", docBlobs)
			return
		}
		content = string(b)
	}
	sha := s.hash("blob", content)
	r.blobs[sha] = content
	writeJSON(w, http.StatusCreated, map[string]any{"sha": sha, "url": s.URL + "repos/" + r.fullName() + "/git/blobs/" + sha})
}

func (s *Server) createTree(w http.ResponseWriter, req *http.Request, r *repo) {
	var in struct {
		BaseTree string `json:"base_tree"`
		Tree     []struct {
			Path, Mode, Type string
			SHA              *string
			Content          *string
		}
	}
	if !decode(w, req, &in) {
		return
	}
	files := map[string]string{}
	if in.BaseTree != "" {
		base, ok := r.trees[in.BaseTree]
		if !ok {
			writeError(w, http.StatusUnprocessableEntity, "base_tree is not a valid tree oid", docTrees)
			return
		}
		files = maps.Clone(base)
	}
	out := []map[string]any{}
	for _, e := range in.Tree {
		switch {
		case e.Content != nil:
			files[e.Path] = *e.Content
		case e.SHA == nil: // "sha": null deletes the path
			delete(files, e.Path)
			continue
		default:
			content, ok := r.blobs[*e.SHA]
			if !ok {
				writeError(w, http.StatusUnprocessableEntity, "tree.sha "+*e.SHA+" is not a valid blob", docTrees)
				return
			}
			files[e.Path] = content
		}
		out = append(out, map[string]any{"path": e.Path, "mode": e.Mode, "type": "blob", "size": len(files[e.Path])})
	}
	sha := s.hash("tree")
	r.trees[sha] = files
	writeJSON(w, http.StatusCreated, map[string]any{
		"sha": sha, "url": s.URL + "repos/" + r.fullName() + "/git/trees/" + sha, "tree": out, "truncated": false,
	})
}

func (s *Server) createCommit(w http.ResponseWriter, req *http.Request, r *repo) {
	var in struct {
		Message string
		Tree    string
		Parents []string
	}
	if !decode(w, req, &in) {
		return
	}
	if _, ok := r.trees[in.Tree]; !ok {
		writeError(w, http.StatusUnprocessableEntity, "Tree SHA does not exist", docCommits+"#create-a-commit")
		return
	}
	for _, p := range in.Parents {
		if r.commits[p] == nil {
			writeError(w, http.StatusUnprocessableEntity, "Parent SHA does not exist or is not a commit object", docCommits+"#create-a-commit")
			return
		}
	}
	sha := s.hash("commit", in.Message, in.Tree)
	c := &commit{sha: sha, tree: in.Tree, message: in.Message, parents: in.Parents, at: s.now()}
	r.commits[sha] = c
	writeJSON(w, http.StatusCreated, s.commitJSON(r, c))
}
