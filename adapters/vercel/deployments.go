package vercel

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Deployment states reported in readyState (and status).
const (
	StateQueued       = "QUEUED"
	StateInitializing = "INITIALIZING"
	StateBuilding     = "BUILDING"
	StateReady        = "READY"
	StateError        = "ERROR"
	StateCanceled     = "CANCELED"
	StateDeleted      = "DELETED"
	// StateBlocked: Vercel stopped the deployment before building it (for
	// example a commit author without access, or a plan limit); it never
	// becomes READY on its own.
	StateBlocked = "BLOCKED"
	// Later steps and an archived deployment, in some of Vercel's enums.
	StateUploading = "UPLOADING"
	StateDeploying = "DEPLOYING"
	StateArchived  = "ARCHIVED"
)

// Terminal lists the documented readyState values a deployment never leaves.
var Terminal = []string{StateReady, StateError, StateCanceled, StateDeleted, StateBlocked, StateArchived}

// InProgress lists the documented readyState values that still move on.
var InProgress = []string{StateQueued, StateInitializing, StateBuilding, StateUploading, StateDeploying}

// Deployment is a Vercel deployment as opsd uses it.
type Deployment struct {
	ID           string // "dpl_..." (uid in lists, id elsewhere)
	URL          string // hostname without scheme, e.g. "web-abc123.vercel.app"
	Name         string
	ProjectID    string
	State        string // readyState: QUEUED, INITIALIZING, BUILDING, READY, ERROR, CANCELED, DELETED, BLOCKED
	Target       string // "production", "staging" or "" for a preview
	InspectorURL string
	CreatedAt    time.Time
	Meta         map[string]string // e.g. githubCommitRef, githubCommitSha
	ErrorCode    string            // set when State is ERROR
	ErrorMessage string
}

// Done reports whether the deployment reached a final state (Terminal).
func (d *Deployment) Done() bool { return slices.Contains(Terminal, d.State) }

// CommitRef is the Git branch or tag the deployment was built from, if any.
func (d *Deployment) CommitRef() string { return d.Meta["githubCommitRef"] }

// CommitSHA is the Git commit the deployment was built from, if any.
func (d *Deployment) CommitSHA() string { return d.Meta["githubCommitSha"] }

// apiDeployment is the union of the list (v6) and get/create (v13) shapes.
type apiDeployment struct {
	UID          string            `json:"uid"`
	ID           string            `json:"id"`
	URL          string            `json:"url"`
	Name         string            `json:"name"`
	ProjectID    string            `json:"projectId"`
	State        string            `json:"state"`
	ReadyState   string            `json:"readyState"`
	Status       string            `json:"status"`
	Target       *string           `json:"target"`
	InspectorURL string            `json:"inspectorUrl"`
	Created      int64             `json:"created"`
	CreatedAt    int64             `json:"createdAt"`
	Meta         map[string]string `json:"meta"`
	ErrorCode    string            `json:"errorCode"`
	ErrorMessage string            `json:"errorMessage"`
}

func (a *apiDeployment) deployment() *Deployment {
	d := &Deployment{
		ID:           firstNonEmpty(a.ID, a.UID),
		URL:          a.URL,
		Name:         a.Name,
		ProjectID:    a.ProjectID,
		State:        firstNonEmpty(a.ReadyState, a.State, a.Status),
		InspectorURL: a.InspectorURL,
		Meta:         a.Meta,
		ErrorCode:    a.ErrorCode,
		ErrorMessage: a.ErrorMessage,
	}
	if a.Target != nil {
		d.Target = *a.Target
	}
	if ms := firstNonZero(a.CreatedAt, a.Created); ms != 0 {
		d.CreatedAt = time.UnixMilli(ms).UTC()
	}
	if d.Meta == nil {
		d.Meta = map[string]string{}
	}
	return d
}

// GetDeployment returns a deployment by ID or hostname (GET /v13/deployments/{idOrUrl}).
func (c *Client) GetDeployment(ctx context.Context, idOrURL string) (*Deployment, error) {
	var a apiDeployment
	if err := c.do(ctx, "GET", "/v13/deployments/"+seg(hostOrID(idOrURL)), nil, nil, &a); err != nil {
		return nil, fmt.Errorf("get deployment %s: %w", idOrURL, err)
	}
	return a.deployment(), nil
}

// maxPageSize is the largest page GET /v6/deployments returns.
const maxPageSize = 100

// maxPreviewPages bounds the walk for preview deployments (500 deployments).
const maxPreviewPages = 5

// ListDeployments returns up to limit deployments of a project (ID or name),
// newest first, optionally only those of target ("production", a custom
// environment such as "staging", or "preview"); limit <= 0 means 20. It
// follows pagination.next (sent back as until) across pages.
//
// "preview" is not a value Vercel documents for the target filter (preview
// deployments have target null), so for it no filter is sent and deployments
// with a target are skipped here, looking at no more than maxPreviewPages pages.
func (c *Client) ListDeployments(ctx context.Context, projectID, target string, limit int) ([]Deployment, error) {
	if limit <= 0 {
		limit = 20
	}
	preview := target == "preview"
	var out []Deployment
	var until int64
	for pages := 0; len(out) < limit && (!preview || pages < maxPreviewPages); pages++ {
		q := url.Values{}
		if projectID != "" {
			q.Set("projectId", projectID)
		}
		size := min(limit-len(out), maxPageSize)
		if preview {
			size = maxPageSize
		} else if target != "" {
			q.Set("target", target)
		}
		q.Set("limit", strconv.Itoa(size))
		if until != 0 {
			q.Set("until", strconv.FormatInt(until, 10))
		}
		var page struct {
			Deployments []apiDeployment `json:"deployments"`
			Pagination  struct {
				Count int    `json:"count"`
				Next  *int64 `json:"next"`
			} `json:"pagination"`
		}
		if err := c.do(ctx, "GET", "/v6/deployments", q, nil, &page); err != nil {
			return nil, fmt.Errorf("list deployments of %s: %w", projectID, err)
		}
		for i := range page.Deployments {
			d := page.Deployments[i].deployment()
			if preview && d.Target != "" {
				continue
			}
			out = append(out, *d)
		}
		// A missing next, or one that does not move back in time, ends the walk
		// (the second guards against looping on a misbehaving server).
		if page.Pagination.Next == nil || len(page.Deployments) == 0 || (until != 0 && *page.Pagination.Next >= until) {
			break
		}
		until = *page.Pagination.Next
	}
	return out[:min(len(out), limit)], nil
}

// GitSource names the commit to build for CreateDeployment. Type is the
// project's link.type (Project.Link.Type); Vercel's gitSource takes org and
// repo for GitHub ("github", "github-limited", "github-custom-host"), owner
// and slug for Bitbucket, and the numeric project id for GitLab.
type GitSource struct {
	Type      string `json:"type"`                // "github" when empty
	Org       string `json:"org,omitempty"`       // GitHub repository owner
	Repo      string `json:"repo,omitempty"`      // GitHub repository name
	Owner     string `json:"owner,omitempty"`     // Bitbucket workspace (from Org)
	Slug      string `json:"slug,omitempty"`      // Bitbucket repository (from Repo)
	ProjectID int64  `json:"projectId,omitempty"` // GitLab project id (from RepoID)
	Ref       string `json:"ref"`                 // branch, tag or commit SHA
	SHA       string `json:"sha,omitempty"`       // optional exact commit
	// RepoID is the provider's repository id (Project.Link.RepoID); for
	// GitLab it becomes projectId. Not sent otherwise.
	RepoID int64 `json:"-"`
}

// shaped returns the gitSource in the shape Vercel documents for its type.
func (gs GitSource) shaped() (GitSource, error) {
	if gs.Type == "" {
		gs.Type = "github"
	}
	if gs.Ref == "" {
		return gs, fmt.Errorf("gitSource needs a ref")
	}
	switch {
	case strings.HasPrefix(gs.Type, "github"):
		if gs.Org == "" || gs.Repo == "" {
			return gs, fmt.Errorf("gitSource of type %s needs org, repo and ref", gs.Type)
		}
	case gs.Type == "bitbucket":
		gs.Owner, gs.Slug, gs.Org, gs.Repo = gs.Org, gs.Repo, "", ""
		if gs.Owner == "" || gs.Slug == "" {
			return gs, fmt.Errorf("gitSource of type bitbucket needs the workspace and repository")
		}
	case gs.Type == "gitlab":
		gs.ProjectID, gs.Org, gs.Repo = gs.RepoID, "", ""
		if gs.ProjectID == 0 {
			return gs, fmt.Errorf("gitSource of type gitlab needs the project's repoId (link.projectId)")
		}
	default:
		return gs, fmt.Errorf("gitSource type %q is not one Vercel documents (github, gitlab, bitbucket)", gs.Type)
	}
	return gs, nil
}

// CreateDeploymentRequest is the body of POST /v13/deployments. Set GitSource
// for a Git deployment, or DeploymentID to redeploy an existing deployment.
type CreateDeploymentRequest struct {
	Name         string            `json:"name"`              // required: the project name
	Project      string            `json:"project,omitempty"` // project ID or name, when it differs from Name
	Target       string            `json:"target,omitempty"`  // "production", "staging"; empty for a preview
	GitSource    *GitSource        `json:"gitSource,omitempty"`
	DeploymentID string            `json:"deploymentId,omitempty"`
	Meta         map[string]string `json:"meta,omitempty"`
}

// CreateDeployment starts a deployment (POST /v13/deployments). Creating is not
// idempotent, so it is retried only when Vercel refused it with a 429.
func (c *Client) CreateDeployment(ctx context.Context, req CreateDeploymentRequest) (*Deployment, error) {
	if req.Name == "" {
		return nil, fmt.Errorf("create deployment: name is required")
	}
	if (req.GitSource == nil) == (req.DeploymentID == "") {
		return nil, fmt.Errorf("create deployment %s: set exactly one of gitSource and deploymentId", req.Name)
	}
	if gs := req.GitSource; gs != nil {
		cp, err := gs.shaped()
		if err != nil {
			return nil, fmt.Errorf("create deployment %s: %w", req.Name, err)
		}
		req.GitSource = &cp
	}
	var a apiDeployment
	err := c.retryRateLimited(ctx, func() error {
		return c.do(ctx, "POST", "/v13/deployments", nil, req, &a)
	})
	if err != nil {
		return nil, fmt.Errorf("create deployment %s: %w", req.Name, err)
	}
	return a.deployment(), nil
}

// hostOrID accepts "dpl_x", "app.vercel.app" or "https://app.vercel.app/path"
// and returns the ID or bare hostname the API expects.
func hostOrID(s string) string {
	if u, err := url.Parse(s); err == nil && u.Host != "" && (u.Scheme == "https" || u.Scheme == "http") {
		return u.Host
	}
	return strings.TrimSuffix(s, "/")
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func firstNonZero(vs ...int64) int64 {
	for _, v := range vs {
		if v != 0 {
			return v
		}
	}
	return 0
}
