// Package redact removes secrets from text before it leaves the process.
//
// A Redactor knows two kinds of secret: the values it was configured with
// (the service-role key, adapter tokens, the webhook secret) and well-known
// token shapes that are redacted even when nobody configured them (GitHub,
// Slack and DigitalOcean tokens, JWTs, bearer and Authorization header values,
// passwords in URLs, token-like query parameters). Every match is replaced by
// [Marker]. Log lines go through [NewCore], event messages and error texts
// through [Redactor.String] and [Redactor.Error], event data through
// [Redactor.JSON].
package redact

import (
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Marker replaces every redacted value.
const Marker = "[REDACTED]"

// MinSecretLen is the length below which a configured secret is ignored:
// redacting every occurrence of a very short value would mangle ordinary text.
const MinSecretLen = 6

// maxPasses bounds how often String rescans its own output. A rescan is only
// needed for secrets containing '[' or ']', which can re-form next to a Marker.
const maxPasses = 4

// A Redactor replaces secrets and token shapes with Marker. The zero value
// and a nil *Redactor redact token shapes only. It is safe for concurrent use.
type Redactor struct {
	mu    sync.Mutex // serializes Add
	state atomic.Pointer[secretSet]
}

// secretSet is an immutable snapshot of the configured secrets, swapped
// atomically by Add so that String never takes a lock.
type secretSet struct {
	secrets []needle // unique; overlapping matches are merged, so order is free
	recheck bool     // some secret contains '[' or ']'
}

// A needle is a secret and the part of it searched for. strings.Index is
// fastest for needles of up to a few dozen bytes whose first byte is rare in
// the text; API keys often start with a common letter ("eyJ...") and
// service-role keys are longer than that, so the probe starts at the first
// uncommon byte and is cut short. A probe hit is then checked in full.
type needle struct {
	secret string
	probe  string
	at     int // offset of probe in secret
}

// maxProbe keeps probes within strings.Index's fast path on amd64 and arm64.
const maxProbe = 32

func newNeedle(secret string) needle {
	at, best := 0, -1
	for i := 0; i+MinSecretLen <= len(secret) && i < 16; i++ {
		if r := rarity(secret[i]); r > best {
			at, best = i, r
		}
	}
	probe := secret[at:]
	if len(probe) > maxProbe {
		probe = probe[:maxProbe]
	}
	return needle{secret: secret, probe: probe, at: at}
}

// rarity ranks how seldom a byte occurs in log and event text.
func rarity(c byte) int {
	switch {
	case c == ' ' || 'a' <= c && c <= 'z':
		return 0
	case c == '.' || c == '-' || c == '/' || c == ':':
		return 1
	case 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_':
		return 2
	default:
		return 3
	}
}

// index returns the index of the first occurrence of the secret in s at or
// after from, or -1.
func (n *needle) index(s string, from int) int {
	for off := from + n.at; off+len(n.probe) <= len(s); {
		i := strings.Index(s[off:], n.probe)
		if i < 0 {
			return -1
		}
		start := off + i - n.at
		if strings.HasPrefix(s[start:], n.secret) {
			return start
		}
		off += i + 1
	}
	return -1
}

var emptySet = &secretSet{}

// New returns a Redactor for the given secret values. Empty values, values
// shorter than MinSecretLen and values that are part of Marker are ignored.
func New(secrets ...string) *Redactor {
	r := &Redactor{}
	r.Add(secrets...)
	return r
}

// Add configures more secret values, with the same rules as New. Strings
// redacted after Add returns are redacted for these values too.
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.set()
	next := &secretSet{secrets: slices.Clone(old.secrets), recheck: old.recheck}
	for _, s := range secrets {
		for _, v := range variants(s) {
			known := slices.ContainsFunc(next.secrets, func(n needle) bool { return n.secret == v })
			if known || len(v) < MinSecretLen || strings.Contains(Marker, v) {
				continue
			}
			next.secrets = append(next.secrets, newNeedle(v))
			next.recheck = next.recheck || strings.ContainsAny(v, "[]")
		}
	}
	r.state.Store(next)
}

// variants returns a secret and the encoded forms it commonly appears in.
func variants(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	out := []string{s}
	if q := url.QueryEscape(s); q != s {
		out = append(out, q)
	}
	return out
}

func (r *Redactor) set() *secretSet {
	if r == nil {
		return emptySet
	}
	if s := r.state.Load(); s != nil {
		return s
	}
	return emptySet
}

// String returns s with every configured secret and every known token shape
// replaced by Marker. It returns s itself when there is nothing to redact.
func (r *Redactor) String(s string) string {
	set := r.set()
	var buf []span
	for pass := 0; pass < maxPasses; pass++ {
		buf = findSpans(set, s, buf[:0])
		if len(buf) == 0 {
			return s
		}
		s = replaceSpans(s, buf)
		if !set.recheck {
			return s
		}
	}
	// A pathological secret keeps re-forming around the markers: give up on
	// the text rather than let any of it through.
	if len(findSpans(set, s, buf[:0])) > 0 {
		return Marker
	}
	return s
}

// Error returns the redacted text of err, or "" for a nil error.
func (r *Redactor) Error(err error) string {
	if err == nil {
		return ""
	}
	return r.String(err.Error())
}

// span is a half-open byte range [start, end) to be replaced by Marker.
type span struct{ start, end int }

// findSpans appends to buf the ranges of s to redact, sorted and merged.
func findSpans(set *secretSet, s string, buf []span) []span {
	for i := range set.secrets {
		n := &set.secrets[i]
		for off := 0; ; {
			start := n.index(s, off)
			if start < 0 {
				break
			}
			off = start + len(n.secret)
			buf = append(buf, span{start, off})
		}
	}
	for i := range shapes {
		buf = shapes[i].find(s, buf)
	}
	if len(buf) < 2 {
		return buf
	}
	slices.SortFunc(buf, func(a, b span) int { return a.start - b.start })
	// Merge overlapping and touching spans so that two adjacent secrets
	// become one Marker.
	out := buf[:1]
	for _, sp := range buf[1:] {
		last := &out[len(out)-1]
		if sp.start <= last.end {
			last.end = max(last.end, sp.end)
			continue
		}
		out = append(out, sp)
	}
	return out
}

// replaceSpans replaces each span of s, sorted and disjoint, with Marker.
func replaceSpans(s string, spans []span) string {
	var b strings.Builder
	n := len(s)
	for _, sp := range spans {
		n += len(Marker) - (sp.end - sp.start)
	}
	b.Grow(n)
	prev := 0
	for _, sp := range spans {
		b.WriteString(s[prev:sp.start])
		b.WriteString(Marker)
		prev = sp.end
	}
	b.WriteString(s[prev:])
	return b.String()
}
