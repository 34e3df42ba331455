package executor

import (
	"context"
	"fmt"
	"unicode/utf8"
)

// MaxArtifactRowBytes is the most an artifact row's value may take once
// JSON-escaped, whatever Config.ArtifactMaxBytes says. Supabase Realtime
// drops the record of a change over 1 MiB (Error 413: only ids reach the
// browser); the whole change is the escaped value plus the other columns and
// Realtime's envelope, so the value is kept to half of that.
const MaxArtifactRowBytes = 512 << 10

// LargeArtifactStore keeps an artifact too large for its row somewhere the
// UI can fetch it (Supabase Storage) and returns the link.
type LargeArtifactStore interface {
	PutLargeArtifact(ctx context.Context, a Artifact) (link string, err error)
}

// WithLargeArtifacts returns s with large artifacts going to big: a value
// over the row cap becomes a link artifact to the object big stored.
func WithLargeArtifacts(s Store, big LargeArtifactStore) Store {
	return &largeArtifactStore{Store: s, big: big}
}

type largeArtifactStore struct {
	Store
	big LargeArtifactStore
}

func (s *largeArtifactStore) PutLargeArtifact(ctx context.Context, a Artifact) (string, error) {
	return s.big.PutLargeArtifact(ctx, a)
}

// rowCap is the cap of an artifact row's escaped value for a configured cap.
func rowCap(configured int) int {
	if configured <= 0 || configured > MaxArtifactRowBytes {
		return MaxArtifactRowBytes
	}
	return configured
}

// escapedLen is how many bytes r takes inside a JSON string, counted the
// way encoding/json writes it (the largest of the encoders on the way).
func escapedLen(r rune, size int) int {
	switch {
	case r == '"' || r == '\\' || r == '\n' || r == '\r' || r == '\t':
		return 2
	case r < 0x20 || r == '<' || r == '>' || r == '&' || r == '\u2028' || r == '\u2029':
		return 6
	case r == utf8.RuneError && size == 1:
		return 6 // invalid UTF-8 becomes \ufffd
	}
	return size
}

// fitEscaped returns the longest prefix of s whose escaped length is at
// most budget, cut on a rune boundary, and the escaped length of all of s.
func fitEscaped(s string, budget int) (prefix string, total int) {
	cut := -1
	for i, r := range s {
		n := escapedLen(r, len(string(r)))
		if r == utf8.RuneError {
			_, n2 := utf8.DecodeRuneInString(s[i:])
			n = escapedLen(r, n2)
		}
		if cut < 0 && total+n > budget {
			cut = i
		}
		total += n
	}
	if cut < 0 {
		return s, total
	}
	return s[:cut], total
}

// fitArtifact makes a redacted value fit its row: unchanged when it does;
// else stored whole by a LargeArtifactStore and replaced with a link to it;
// else cut with a visible marker. A warn event says which happened.
func (rc *RunContext) fitArtifact(ctx context.Context, a Artifact) (Artifact, error) {
	limit := rowCap(rc.maxArtifact)
	const markerRoom = 160 // the marker below, escaped, with room to spare
	prefix, total := fitEscaped(a.Value, limit)
	if total <= limit {
		return a, nil
	}
	if big, ok := rc.store.(LargeArtifactStore); ok {
		link, err := big.PutLargeArtifact(ctx, a)
		if err == nil {
			msg := fmt.Sprintf("artifact %q is %d bytes (JSON-escaped), over the %d-byte row cap: stored in Supabase Storage and linked", a.Title, total, limit)
			if werr := rc.Warn("System", msg, nil); werr != nil {
				return a, werr
			}
			return Artifact{RunID: a.RunID, Kind: ArtifactLink, Title: a.Title + " (full content in Storage)", Value: link}, nil
		}
		if werr := rc.Warn("System", fmt.Sprintf("artifact %q: upload to Supabase Storage failed, keeping a truncated row: %s", a.Title, rc.redact.String(err.Error())), nil); werr != nil {
			return a, werr
		}
	}
	prefix, _ = fitEscaped(a.Value, limit-markerRoom)
	omitted := len(a.Value) - len(prefix)
	a.Value = prefix + fmt.Sprintf("\n…[truncated: %d bytes omitted; set artifact_storage_bucket to keep large artifacts whole]", omitted)
	msg := fmt.Sprintf("artifact %q is %d bytes (JSON-escaped), over the %d-byte row cap (artifact_max_bytes): truncated, %d bytes omitted", a.Title, total, limit, omitted)
	return a, rc.Warn("System", msg, nil)
}
