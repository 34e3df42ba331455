package runbooks

import (
	"bytes"
	"embed"
	"fmt"
	"regexp"
	"strings"
	"text/template"
	"unicode"
	"unicode/utf8"
)

//go:embed spectemplates/*.md.tmpl
var specTemplateFS embed.FS

// specNames are the Spec Kit files, in order.
var specNames = []string{"constitution", "prd", "plan", "tasks"}

var specTemplates = template.Must(template.New("spec").Funcs(template.FuncMap{
	"add": func(a, b int) int { return a + b },
	"lowerFirst": func(s string) string {
		r, n := utf8.DecodeRuneInString(s)
		if n == 0 {
			return s
		}
		return string(unicode.ToLower(r)) + s[n:]
	},
}).ParseFS(specTemplateFS, "spectemplates/*.md.tmpl"))

// specData is what the templates see.
type specData struct {
	Target, Repo, Env, RunID, Date string
	Intent                         string   // the run's intent (or, without one, its notes)
	Title                          string   // first line of the intent
	Notes                          string   // the notes input
	NoteLines                      []string // notes split into items, bullets removed
}

// bulletPattern matches a list marker: "- ", "* ", "• ", "1. ", "2) ".
var bulletPattern = regexp.MustCompile(`^\s*(?:[-*•]|\d+[.)])\s+`)

// maxNoteLines bounds the items taken from the notes.
const maxNoteLines = 50

func newSpecData(target, repo, env, runID, date, intent, notes string) specData {
	d := specData{Target: target, Repo: repo, Env: env, RunID: runID, Date: date, Notes: strings.TrimSpace(notes)}
	d.Intent = strings.TrimSpace(intent)
	if d.Intent == "" {
		d.Intent = d.Notes
	}
	d.Title = firstLine(d.Intent, 120)
	for _, l := range strings.Split(d.Notes, "\n") {
		l = strings.TrimSpace(bulletPattern.ReplaceAllString(l, ""))
		if l != "" && len(d.NoteLines) < maxNoteLines {
			d.NoteLines = append(d.NoteLines, l)
		}
	}
	return d
}

// specFile is one generated file.
type specFile struct {
	Name    string // constitution, prd, plan, tasks
	Path    string // in the repository
	Content string
}

// renderSpec renders the four files for target under dir.
func renderSpec(d specData, dir string) ([]specFile, error) {
	out := make([]specFile, 0, len(specNames))
	for _, n := range specNames {
		var b bytes.Buffer
		if err := specTemplates.ExecuteTemplate(&b, n+".md.tmpl", d); err != nil {
			return nil, fmt.Errorf("render %s.md: %w", n, err)
		}
		out = append(out, specFile{Name: n, Path: dir + "/" + n + ".md", Content: b.String()})
	}
	return out, nil
}

// newFileDiff renders files as a unified diff that adds them.
func newFileDiff(files []specFile) string {
	var b strings.Builder
	for _, f := range files {
		lines := strings.Split(strings.TrimSuffix(f.Content, "\n"), "\n")
		fmt.Fprintf(&b, "diff --git a/%s b/%s\nnew file mode 100644\n--- /dev/null\n+++ b/%s\n@@ -0,0 +1,%d @@\n", f.Path, f.Path, f.Path, len(lines))
		for _, l := range lines {
			b.WriteString("+" + l + "\n")
		}
	}
	return b.String()
}
