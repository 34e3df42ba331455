package chaos

import (
	"fmt"
	"strings"
	"time"
)

// Report is what a chaos run did and which invariants held.
type Report struct {
	Config     Config
	Invariants []*Invariant

	began     time.Time
	activity  [][2]string
	timelines []string
	seen      map[*runRow]bool
}

// timeline keeps the events of a run involved in a violation (the first few).
func (r *Report) timeline(run *runRow) {
	if r.seen == nil {
		r.seen = map[*runRow]bool{}
	}
	if r.seen[run] || len(r.timelines) >= 6 {
		return
	}
	r.seen[run] = true
	r.timelines = append(r.timelines, run.timeline())
}

// Invariant is one checked property.
type Invariant struct {
	Name       string
	Violations int
	Examples   []string // the first few violations

	detail string
}

// Held reports whether no violation was found.
func (i *Invariant) Held() bool { return i.Violations == 0 }

func (i *Invariant) fail(format string, args ...any) {
	i.Violations++
	if len(i.Examples) < 5 {
		i.Examples = append(i.Examples, fmt.Sprintf(format, args...))
	}
}

func (r *Report) add(name string) *Invariant {
	inv := &Invariant{Name: name}
	r.Invariants = append(r.Invariants, inv)
	return inv
}

// Violations is the total over every invariant.
func (r *Report) Violations() int {
	n := 0
	for _, i := range r.Invariants {
		n += i.Violations
	}
	return n
}

// Table renders the activity and the invariants as a plain-text table.
func (r *Report) Table() string {
	var b strings.Builder
	w := 0
	for _, a := range r.activity {
		w = max(w, len(a[0]))
	}
	b.WriteString("\nactivity\n")
	for _, a := range r.activity {
		fmt.Fprintf(&b, "  %-*s  %s\n", w, a[0], a[1])
	}
	w = 0
	for _, i := range r.Invariants {
		w = max(w, len(i.Name))
	}
	fmt.Fprintf(&b, "\n  %-*s  %-8s  %10s  %s\n", w, "invariant", "result", "violations", "measured")
	b.WriteString("  " + strings.Repeat("-", w+2+8+2+10+2+40) + "\n")
	for _, i := range r.Invariants {
		result := "held"
		if !i.Held() {
			result = "VIOLATED"
		}
		fmt.Fprintf(&b, "  %-*s  %-8s  %10d  %s\n", w, i.Name, result, i.Violations, i.detail)
	}
	for _, i := range r.Invariants {
		for _, e := range i.Examples {
			fmt.Fprintf(&b, "  ! %s: %s\n", i.Name, e)
		}
	}
	if len(r.timelines) > 0 {
		b.WriteString("\n  events of runs involved in violations:\n")
		for _, t := range r.timelines {
			b.WriteString("    " + t)
		}
	}
	return b.String()
}
