package vercel

import (
	"context"
	"fmt"
)

// Project is a Vercel project and the Git repository it deploys from.
type Project struct {
	ID        string
	Name      string
	AccountID string
	Framework string
	Link      *ProjectLink // nil when no repository is connected
}

// ProjectLink is the project's connected Git repository.
type ProjectLink struct {
	Type             string // "github"
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
			ProductionBranch string `json:"productionBranch"`
		} `json:"link"`
	}
	if err := c.do(ctx, "GET", "/v9/projects/"+seg(idOrName), nil, nil, &a); err != nil {
		return nil, fmt.Errorf("get project %s: %w", idOrName, err)
	}
	p := &Project{ID: a.ID, Name: a.Name, AccountID: a.AccountID, Framework: a.Framework}
	if a.Link != nil {
		p.Link = &ProjectLink{Type: a.Link.Type, Org: a.Link.Org, Repo: a.Link.Repo, RepoID: a.Link.RepoID, ProductionBranch: a.Link.ProductionBranch}
	}
	return p, nil
}
