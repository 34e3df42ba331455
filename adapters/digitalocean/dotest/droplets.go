package dotest

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Droplet is a Droplet held by the fake.
type Droplet struct {
	ID          int // generated when 0
	Name        string
	Status      string // default "active"
	PublicIPv4  string
	PrivateIPv4 string
	Region      string // slug; default "nyc3"
	Tags        []string
	CreatedAt   time.Time
}

// AddDroplet stores a Droplet and returns it with defaults filled in.
func (s *Server) AddDroplet(d Droplet) Droplet {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.ID == 0 {
		s.nextID++
		d.ID = s.nextID
	}
	if d.Status == "" {
		d.Status = "active"
	}
	if d.Region == "" {
		d.Region = "nyc3"
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = time.Now().UTC().Truncate(time.Second)
	}
	d.Tags = slices.Clone(d.Tags)
	s.droplets = append(s.droplets, d)
	return d
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/droplets", s.listDroplets)
	mux.HandleFunc("GET /v2/droplets/{id}", s.getDroplet)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "The resource you were accessing could not be found.")
	})
	return mux
}

// listDroplets serves GET /v2/droplets with name or tag_name (not both),
// page (default 1) and per_page (default 20, max 200).
func (s *Server) listDroplets(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name, tag := q.Get("name"), q.Get("tag_name")
	if name != "" && tag != "" {
		writeError(w, http.StatusBadRequest, "bad_request", "name can not be combined with tag_name")
		return
	}
	page, ok1 := positive(q.Get("page"), 1)
	perPage, ok2 := positive(q.Get("per_page"), 20)
	if !ok1 || !ok2 {
		writeError(w, http.StatusBadRequest, "bad_request", "page and per_page must be positive integers")
		return
	}
	perPage = min(perPage, 200)

	s.mu.Lock()
	var match []Droplet
	for _, d := range s.droplets {
		if (name == "" || strings.EqualFold(d.Name, name)) && (tag == "" || slices.Contains(d.Tags, tag)) {
			match = append(match, d)
		}
	}
	s.mu.Unlock()

	lastPage := max(1, (len(match)+perPage-1)/perPage)
	from := min((page-1)*perPage, len(match))
	to := min(from+perPage, len(match))
	items := make([]map[string]any, 0, to-from)
	for _, d := range match[from:to] {
		items = append(items, dropletJSON(d))
	}
	pages := map[string]string{}
	link := func(p int) string {
		u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path}
		lq := url.Values{}
		for k, v := range q {
			lq[k] = v
		}
		lq.Set("page", strconv.Itoa(p))
		lq.Set("per_page", strconv.Itoa(perPage))
		u.RawQuery = lq.Encode()
		return u.String()
	}
	if page > 1 {
		pages["first"], pages["prev"] = link(1), link(min(page-1, lastPage))
	}
	if page < lastPage {
		pages["next"], pages["last"] = link(page+1), link(lastPage)
	}
	links := map[string]any{}
	if len(pages) > 0 {
		links["pages"] = pages
	}
	writeJSON(w, http.StatusOK, map[string]any{"droplets": items, "links": links, "meta": map[string]int{"total": len(match)}})
}

func (s *Server) getDroplet(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.droplets {
		if err == nil && d.ID == id {
			writeJSON(w, http.StatusOK, map[string]any{"droplet": dropletJSON(d)})
			return
		}
	}
	writeError(w, http.StatusNotFound, "not_found", "The resource you were accessing could not be found.")
}

// dropletJSON is the documented Droplet object (the fields a client reads).
func dropletJSON(d Droplet) map[string]any {
	v4 := []map[string]string{}
	if d.PublicIPv4 != "" {
		v4 = append(v4, map[string]string{"ip_address": d.PublicIPv4, "netmask": "255.255.240.0", "gateway": gateway(d.PublicIPv4), "type": "public"})
	}
	if d.PrivateIPv4 != "" {
		v4 = append(v4, map[string]string{"ip_address": d.PrivateIPv4, "netmask": "255.255.0.0", "gateway": gateway(d.PrivateIPv4), "type": "private"})
	}
	tags := d.Tags
	if tags == nil {
		tags = []string{}
	}
	return map[string]any{
		"id": d.ID, "name": d.Name, "memory": 1024, "vcpus": 1, "disk": 25, "locked": false,
		"status": d.Status, "created_at": d.CreatedAt.Format(time.RFC3339),
		"features": []string{"monitoring"}, "backup_ids": []int{}, "snapshot_ids": []int{},
		"size_slug": "s-1vcpu-1gb", "networks": map[string]any{"v4": v4, "v6": []any{}},
		"region": map[string]any{"slug": d.Region, "name": d.Region, "available": true, "features": []string{"metadata"}, "sizes": []string{"s-1vcpu-1gb"}},
		"tags":   tags, "volume_ids": []string{}, "vpc_uuid": "5a4981aa-9653-4bd1-bef5-d6bff52042e4",
		"image":              map[string]any{"id": 7555620, "name": "24.04 (LTS) x64", "distribution": "Ubuntu", "slug": "ubuntu-24-04-x64"},
		"kernel":             nil,
		"next_backup_window": nil,
	}
}

func gateway(ip string) string {
	if i := strings.LastIndexByte(ip, '.'); i > 0 {
		return ip[:i] + ".1"
	}
	return ""
}

func positive(v string, def int) (int, bool) {
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	return n, err == nil && n > 0
}
