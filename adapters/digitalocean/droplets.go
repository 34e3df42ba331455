package digitalocean

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/digitalocean/godo"
)

// Droplet is a DigitalOcean Droplet as opsd uses it.
type Droplet struct {
	ID         int
	Name       string
	Status     string // "new", "active", "off", "archive"
	PublicIPv4 string // "" when the Droplet has none
	Region     string // slug, e.g. "nyc3"
	Tags       []string
}

// perPage is the largest page the Droplets list returns.
const perPage = 200

// Droplets lists Droplets named name (exact, case-insensitive), or tagged tag,
// following pagination. DigitalOcean cannot filter by both at once, so with
// both it lists by tag and keeps those named name; with neither it lists all.
func (c *Client) Droplets(ctx context.Context, name, tag string) ([]Droplet, error) {
	list := func(opt *godo.ListOptions) ([]godo.Droplet, *godo.Response, error) {
		switch {
		// godo pastes these into the query string unescaped; escaping keeps a
		// name from run inputs from adding parameters of its own.
		case tag != "":
			return c.godo.Droplets.ListByTag(ctx, url.QueryEscape(tag), opt)
		case name != "":
			return c.godo.Droplets.ListByName(ctx, url.QueryEscape(name), opt)
		default:
			return c.godo.Droplets.List(ctx, opt)
		}
	}
	var out []Droplet
	for page := 1; ; page++ {
		ds, resp, err := list(&godo.ListOptions{Page: page, PerPage: perPage})
		if err != nil {
			return nil, fmt.Errorf("list droplets (name %q, tag %q): %w", name, tag, translate(err))
		}
		for i := range ds {
			if tag != "" && name != "" && !strings.EqualFold(ds[i].Name, name) {
				continue
			}
			out = append(out, fromGodo(&ds[i]))
		}
		// An empty page also ends the walk, in case a server keeps sending "next".
		if resp == nil || resp.Links == nil || resp.Links.IsLastPage() || len(ds) == 0 {
			return out, nil
		}
	}
}

func fromGodo(d *godo.Droplet) Droplet {
	ip, _ := d.PublicIPv4() // no networks just means no address
	out := Droplet{ID: d.ID, Name: d.Name, Status: d.Status, PublicIPv4: ip, Tags: d.Tags}
	if d.Region != nil {
		out.Region = d.Region.Slug
	}
	return out
}
