package supabaseadapter

import (
	"fmt"
	"strings"
)

// FormatDiff renders changes like a unified diff: a hunk per table (and one
// for functions), "-" lines for the from side, "+" lines for the to side.
func FormatDiff(changes []Change) string {
	if len(changes) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("--- from\n+++ to\n")
	hunk := ""
	for _, c := range changes {
		h := "table " + c.Table
		if c.Kind == KindFunction {
			h = "functions"
		}
		if h != hunk {
			fmt.Fprintf(&b, "@@ %s @@\n", h)
			hunk = h
		}
		if c.From != nil {
			writeLines(&b, "-", describe(c.Kind, c.From))
		}
		if c.To != nil {
			writeLines(&b, "+", describe(c.Kind, c.To))
		}
	}
	return b.String()
}

func writeLines(b *strings.Builder, prefix string, lines []string) {
	for _, l := range lines {
		b.WriteString(prefix + " " + l + "\n")
	}
}

// describe renders one object as diff lines.
func describe(kind Kind, obj any) []string {
	switch o := obj.(type) {
	case *Table:
		if kind == KindRLS {
			return []string{rlsLine(o)}
		}
		lines := []string{"table " + o.Name}
		for i := range o.Columns {
			lines = append(lines, "  "+describe(KindColumn, &o.Columns[i])[0])
		}
		for i := range o.Constraints {
			lines = append(lines, "  "+describe(KindConstraint, &o.Constraints[i])[0])
		}
		for i := range o.Indexes {
			lines = append(lines, "  "+describe(KindIndex, &o.Indexes[i])[0])
		}
		if o.RLSEnabled || o.RLSForced {
			lines = append(lines, "  "+rlsLine(o))
		}
		for i := range o.Policies {
			lines = append(lines, "  "+describe(KindPolicy, &o.Policies[i])[0])
		}
		return lines
	case *Column:
		return []string{"column " + columnDef(o)}
	case *Constraint:
		return []string{fmt.Sprintf("constraint %s %s", o.Name, o.Definition)}
	case *Index:
		return []string{fmt.Sprintf("index %s: %s", o.Name, o.Definition)}
	case *Policy:
		return []string{fmt.Sprintf("policy %s %s", o.Name, policyClauses(o))}
	case *Function:
		s := fmt.Sprintf("function %s", o.Signature)
		if o.Returns != "" {
			s += " returns " + o.Returns
		}
		return []string{fmt.Sprintf("%s language %s sha256 %s", s, o.Language, short(o.Hash))}
	}
	return []string{fmt.Sprint(obj)}
}

func rlsLine(t *Table) string {
	s := "row level security disabled"
	if t.RLSEnabled {
		s = "row level security enabled"
	}
	if t.RLSForced {
		s += ", forced"
	}
	return s
}
