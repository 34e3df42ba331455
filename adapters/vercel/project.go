package vercel

import (
	"context"
	"fmt"
	"strconv"
)

// Project is a Vercel project and the Git repository it deploys from.
type Project struct {
	ID        string
	Name      string
	AccountID string
	Framework string
	Link      *ProjectLink // nil when no repository is connected
}

// ProjectLink is the project's connected Git repository. Vercel names its
// parts per provider; Org and Repo hold GitHub's org/repo, Bitbucket's
// owner/slug or GitLab's projectNamespace/projectName, and RepoID GitHub's
// repoId or GitLab's projectId.
type ProjectLink struct {
	Type             string // "github", "github-limited", "github-custom-host", "gitlab", "bitbucket"
	Org              string
	Repo             string
	RepoID           int64
	ProductionBranch string
}

// GetProject returns a project by ID or name (GET /v9/projects/{idOrName}).
func (c *Client) GetProject(ctx context.Context, idOrName string) (*Project, error) {
	var a struct {
		ID        string `json:"id"`
		Name      string `json:"name"`
		AccountID string `json:"accountId"`
		Framework string `json:"framework"`
		Link      *struct {
			Type             string `json:"type"`
			Org              string `json:"org"`
			Repo             string `json:"repo"`
			RepoID           int64  `json:"repoId"`
			Owner            string `json:"owner"`            // bitbucket
			Slug             string `json:"slug"`             // bitbucket
			ProjectID        string `json:"projectId"`        // gitlab
			ProjectNamespace string `json:"projectNamespace"` // gitlab
			ProjectName      string `json:"projectName"`      // gitlab
			ProductionBranch string `json:"productionBranch"`
		} `json:"link"`
	}
	if err := c.do(ctx, "GET", "/v9/projects/"+seg(idOrName), nil, nil, &a); err != nil {
		return nil, fmt.Errorf("get project %s: %w", idOrName, err)
	}
	p := &Project{ID: a.ID, Name: a.Name, AccountID: a.AccountID, Framework: a.Framework}
	if a.Link != nil {
		l := a.Link
		p.Link = &ProjectLink{Type: l.Type, Org: firstNonEmpty(l.Org, l.Owner, l.ProjectNamespace),
			Repo: firstNonEmpty(l.Repo, l.Slug, l.ProjectName), RepoID: l.RepoID, ProductionBranch: l.ProductionBranch}
		if id, err := strconv.ParseInt(l.ProjectID, 10, 64); err == nil && p.Link.RepoID == 0 {
			p.Link.RepoID = id
		}
	}
	return p, nil
}
