package redact

import (
	"regexp"
	"strings"
)

// A shape is a kind of token recognised without being configured. Its finder
// appends the spans to redact. Finders must be cheap on the common string
// that holds no candidate: each first looks for a rare byte or substring
// with strings.IndexByte or strings.Index and only then looks closer, so
// most strings never reach a regexp.
type shape struct {
	name string
	find func(s string, buf []span) []span
}

// shapes are built once. Vercel tokens have no recognisable shape (24
// alphanumerics), so they are redacted only when configured.
var shapes = []shape{
	{"prefixed_token", findPrefixedTokens},
	{"jwt", findJWTs},
	{"slack", findSlackTokens},
	{"bearer", findBearer},
	{"authorization", findAuthorization},
	{"url_userinfo", findURLPasswords},
	{"param", findSecretParams},
}

// indexFold returns the index of the first case-insensitive occurrence of
// word in s at or after from, or -1. It is driven by IndexByte on
// word[pivot] in both cases: pivot should name a letter rare in ordinary
// text, so that few candidates need a closer look.
func indexFold(s string, from int, word string, pivot int) int {
	lower, upper := word[pivot]|0x20, word[pivot]&^0x20
	best := -1
	for _, c := range [2]byte{lower, upper} {
		for off := from + pivot; off < len(s); {
			i := strings.IndexByte(s[off:], c)
			if i < 0 {
				break
			}
			start := off + i - pivot
			off += i + 1
			if best >= 0 && start >= best {
				break
			}
			if start+len(word) <= len(s) && strings.EqualFold(s[start:start+len(word)], word) {
				best = start
				break
			}
		}
	}
	return best
}

// findPrefixedTokens finds the tokens whose prefix ends in '_': GitHub's
// ghp_, gho_, ghu_, ghs_, ghr_ (36 alphanumerics, maybe more in future) and
// github_pat_; DigitalOcean's dop_v1_, doo_v1_, dor_v1_; Supabase's
// sb_secret_ API keys.
func findPrefixedTokens(s string, buf []span) []span {
	for off := 0; ; {
		i := strings.IndexByte(s[off:], '_')
		if i < 0 {
			return buf
		}
		u := off + i
		off = u + 1
		var start, body, minLen int
		var class *[256]bool
		switch {
		case u >= 3 && s[u-3:u-1] == "gh" && strings.IndexByte("pousr", s[u-1]) >= 0:
			start, body, minLen, class = u-3, u+1, 36, &alnum
		case u >= 6 && s[u-6:u] == "github" && strings.HasPrefix(s[u:], "_pat_"):
			start, body, minLen, class = u-6, u+5, 22, &alnumUnderscore
		case u >= 3 && s[u-3:u-1] == "do" && strings.IndexByte("opr", s[u-1]) >= 0 && strings.HasPrefix(s[u:], "_v1_"):
			start, body, minLen, class = u-3, u+4, 16, &alnum
		case u >= 2 && s[u-2:u] == "sb" && strings.HasPrefix(s[u:], "_secret_"):
			start, body, minLen, class = u-2, u+8, 10, &base64URL
		default:
			continue
		}
		end := scan(s, body, class)
		if end-body >= minLen {
			buf = append(buf, span{start, end})
			off = end
		}
	}
}

// findJWTs finds three base64url segments, the first starting "eyJ" (the
// encoding of `{"`); the signature may be empty (alg "none").
func findJWTs(s string, buf []span) []span {
	for off := 2; off < len(s); {
		// 'J' is rarer than 'e' in text, so look for it first.
		i := strings.IndexByte(s[off:], 'J')
		if i < 0 {
			break
		}
		start := off + i - 2
		off = start + 3
		if s[start:start+2] != "ey" {
			continue
		}
		end := scan(s, start, &base64URL)
		if end-start < 7 || end >= len(s) || s[end] != '.' {
			continue
		}
		p := end + 1
		end = scan(s, p, &base64URL)
		if end-p < 4 || end >= len(s) || s[end] != '.' {
			continue
		}
		end = scan(s, end+1, &base64URL)
		buf = append(buf, span{start, end})
		off = end
	}
	return buf
}

// findSlackTokens finds xoxa-, xoxb-, xoxp-, xoxr- and xoxs- tokens.
func findSlackTokens(s string, buf []span) []span {
	for off := 0; ; {
		i := strings.Index(s[off:], "xox")
		if i < 0 {
			return buf
		}
		start := off + i
		off = start + 3
		if start+5 > len(s) || strings.IndexByte("abprs", s[start+3]) < 0 || s[start+4] != '-' {
			continue
		}
		if end := scan(s, start+5, &slackByte); end-start-5 >= 10 {
			buf = append(buf, span{start, end})
			off = end
		}
	}
}

// findBearer redacts the credential after the word "bearer" (any case)
// and whitespace: 8 or more RFC 6750 token characters.
func findBearer(s string, buf []span) []span {
	for off := 0; ; {
		p := indexFold(s, off, "bearer", 0)
		if p < 0 {
			return buf
		}
		off = p + len("bearer")
		if p > 0 && alnumUnderscore[s[p-1]] {
			continue
		}
		start := scan(s, off, &space)
		if start == off {
			continue
		}
		end := scan(s, start, &bearerByte)
		if end-start < 8 {
			continue
		}
		for end < len(s) && s[end] == '=' {
			end++
		}
		buf = append(buf, span{start, end})
		off = end
	}
}

// authorizationValueRE matches what follows the word "authorization" in a
// header line, a JSON object or a printed Go map; group 1 is the value,
// scheme included: "Basic dXNlcjpwYXNz" is as secret as a bearer token.
var authorizationValueRE = regexp.MustCompile(`^["']?[ \t]*[:=][ \t]*[\["']?((?:[A-Za-z][A-Za-z0-9_-]*[ \t]+)?[^\s"',;\[\]{}]+)`)

func findAuthorization(s string, buf []span) []span {
	for off := 0; ; {
		p := indexFold(s, off, "authorization", 7)
		if p < 0 {
			return buf
		}
		off = p + len("authorization")
		if p > 0 && alnumUnderscore[s[p-1]] {
			continue
		}
		m := authorizationValueRE.FindStringSubmatchIndex(s[off:])
		if m == nil {
			continue
		}
		start, end := off+m[2], off+m[3]
		// "Authorization: [REDACTED]" and "Authorization: Bearer
		// [REDACTED]" are already redacted: the regexp would otherwise
		// take "REDACTED" or "Bearer" for the credential.
		if strings.HasPrefix(s[end:], " "+Marker) || strings.HasPrefix(s[start-1:], Marker) {
			continue
		}
		buf = append(buf, span{start, end})
		off = end
	}
}

// findURLPasswords redacts the password of scheme://user:password@host.
// Go's net/url takes the last '@' of the authority (up to the first '/', '?'
// or '#'); for database URLs, whose passwords are often not percent-encoded,
// a '/' may sit inside the password, so the last '@' before the query or the
// end of the URL is used instead. Redacting too much beats leaking.
func findURLPasswords(s string, buf []span) []span {
	for off := 0; ; {
		i := strings.Index(s[off:], "://")
		if i < 0 {
			return buf
		}
		sep := off + i
		off = sep + 3
		scheme := schemeBefore(s, sep)
		if scheme == "" {
			continue
		}
		rest := s[off:scan(s, off, &urlByte)]
		if strings.IndexByte(rest, '@') < 0 {
			continue // no userinfo: the common case
		}
		authority := rest[:scan(rest, 0, &authorityByte)]
		at := strings.LastIndexByte(authority, '@')
		if at < 0 && isDatabaseScheme(scheme) {
			q := rest
			if end := strings.IndexAny(q, "?#"); end >= 0 {
				q = q[:end]
			}
			at = strings.LastIndexByte(q, '@')
		}
		if at < 0 {
			continue
		}
		colon := strings.IndexByte(rest[:at], ':')
		if colon < 0 || colon+1 == at {
			continue
		}
		buf = append(buf, span{off + colon + 1, off + at})
		off += at
	}
}

// schemeBefore returns the URL scheme ending at s[end], or "".
func schemeBefore(s string, end int) string {
	start := end
	for start > 0 && schemeByte[s[start-1]] {
		start--
	}
	for start < end && !alpha[s[start]] {
		start++
	}
	return s[start:end]
}

func isDatabaseScheme(scheme string) bool {
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql", "mysql", "redis", "rediss", "mongodb", "mongodb+srv", "amqp", "amqps":
		return true
	}
	return false
}

// secretParams are parameter names whose values are redacted in
// name=value text (query strings, logfmt, libpq connection strings).
var secretParams = map[string]bool{
	"apikey": true, "api_key": true, "api-key": true,
	"token": true, "access_token": true, "refresh_token": true, "id_token": true, "auth_token": true,
	"secret": true, "client_secret": true, "password": true, "passwd": true,
	"sig": true, "signature": true,
}

// findSecretParams redacts the value of name=value for the names in
// secretParams, matched case-insensitively, without a regexp: '=' is
// common, and most of the time the name before it is not a secret one.
func findSecretParams(s string, buf []span) []span {
	for off := 0; ; {
		i := strings.IndexByte(s[off:], '=')
		if i < 0 {
			return buf
		}
		eq := off + i
		off = eq + 1
		start := eq
		for start > 0 && paramNameByte[s[start-1]] {
			start--
		}
		if n := eq - start; n < len("sig") || n > len("refresh_token") || !secretParams[strings.ToLower(s[start:eq])] {
			continue
		}
		end := scan(s, off, &paramValueByte)
		// Leave an empty value or an already redacted one alone.
		if end > off && !strings.HasPrefix(s[off:], Marker) {
			buf = append(buf, span{off, end})
		}
		off = end
	}
}

// scan returns the index of the first byte of s at or after i not in class.
func scan(s string, i int, class *[256]bool) int {
	for i < len(s) && class[s[i]] {
		i++
	}
	return i
}

// Byte classes, built once.
var (
	alpha           = class(func(b byte) bool { return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' })
	alnum           = class(func(b byte) bool { return alpha[b] || '0' <= b && b <= '9' })
	space           = class(func(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' })
	slackByte       = class(func(b byte) bool { return alnum[b] || b == '-' })
	bearerByte      = class(func(b byte) bool { return alnum[b] || strings.IndexByte("-._~+/", b) >= 0 })
	alnumUnderscore = class(func(b byte) bool { return alnum[b] || b == '_' })
	base64URL       = class(func(b byte) bool { return alnum[b] || b == '_' || b == '-' })
	schemeByte      = class(func(b byte) bool { return alnum[b] || b == '+' || b == '-' || b == '.' })
	paramNameByte   = class(func(b byte) bool { return alnum[b] || b == '_' || b == '-' })
	paramValueByte  = class(func(b byte) bool { return strings.IndexByte(" \t\r\n&\"'#,;<>)]}`", b) < 0 })
	urlByte         = class(func(b byte) bool { return strings.IndexByte(" \t\r\n\"'<>`", b) < 0 })
	authorityByte   = class(func(b byte) bool { return urlByte[b] && strings.IndexByte("/?#", b) < 0 })
)

func class(in func(byte) bool) (t [256]bool) {
	for c := range 256 {
		t[c] = in(byte(c))
	}
	return t
}
