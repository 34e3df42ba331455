package adapters

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrURLRefused is wrapped by every refusal of URLPolicy.
var ErrURLRefused = errors.New("url refused")

// URLRefusedError says which URL a URLPolicy refused and why.
type URLRefusedError struct {
	URL    string     // the URL without credentials or query string
	Addr   netip.Addr // the offending address, if the refusal is about one
	Reason string
}

func (e *URLRefusedError) Error() string {
	if e.Addr.IsValid() {
		return fmt.Sprintf("%s %s: %s is a %s address (allowlist it to permit)", ErrURLRefused, e.URL, e.Addr, e.Reason)
	}
	return fmt.Sprintf("%s %s: %s", ErrURLRefused, e.URL, e.Reason)
}

// Unwrap makes errors.Is(err, ErrURLRefused) true.
func (e *URLRefusedError) Unwrap() error { return ErrURLRefused }

// URLPolicy guards requests to URLs that come from run inputs or templates
// (never from configuration) against server-side request forgery: only http and
// https, and no private, loopback, link-local (including the 169.254.169.254
// metadata service), unspecified, multicast or otherwise reserved address,
// unless allowlisted. IPv4-mapped and IPv4-embedding IPv6 forms are judged by
// the IPv4 address they carry.
type URLPolicy struct {
	// Allow lists hosts ("status.internal", "*.corp.example"), IP addresses and
	// CIDRs ("10.1.0.0/16") that are permitted even though they would be refused.
	Allow []string

	// lookup resolves a host name; nil means net.DefaultResolver. Tests replace it.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

// Check refuses rawURL unless its scheme is http or https and every address its
// host resolves to is public or allowlisted. The returned error wraps
// ErrURLRefused and names the URL and the reason.
func (p URLPolicy) Check(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		reason := err
		var ue *url.Error
		if errors.As(err, &ue) {
			reason = ue.Err // ue.Error() would repeat the raw URL
		}
		return &URLRefusedError{URL: "(unparsable)", Reason: "invalid URL: " + reason.Error()}
	}
	shown := safeURL(u)
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		return &URLRefusedError{URL: shown, Reason: fmt.Sprintf("scheme %q is not allowed (only http and https)", u.Scheme)}
	}
	host := u.Hostname()
	if host == "" {
		return &URLRefusedError{URL: shown, Reason: "no host"}
	}
	addrs, err := p.resolve(ctx, host)
	if err != nil {
		return &URLRefusedError{URL: shown, Reason: err.Error()}
	}
	for _, a := range addrs {
		if reason := p.refusal(a); reason != "" {
			return &URLRefusedError{URL: shown, Addr: a, Reason: reason}
		}
	}
	return nil
}

// DialContext dials addr only if its host is allowlisted or every address it
// resolves to passes the policy, and then connects to one of exactly those
// addresses: a DNS answer that changes between Check and connect (rebinding)
// cannot reach a refused address. Use it as http.Transport.DialContext.
func (p URLPolicy) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	addrs, err := p.lookupHost(ctx, host)
	if err != nil {
		return nil, &URLRefusedError{URL: addr, Reason: err.Error()}
	}
	if !p.hostAllowed(host) {
		for _, a := range addrs {
			if reason := p.refusal(a); reason != "" {
				return nil, &URLRefusedError{URL: addr, Addr: a, Reason: reason}
			}
		}
	}
	var d net.Dialer
	var firstErr error
	for _, a := range addrs {
		if (network == "tcp4" && !a.Unmap().Is4()) || (network == "tcp6" && a.Unmap().Is4()) {
			continue
		}
		conn, err := d.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("dial %s: no %s address", addr, network)
	}
	return nil, firstErr
}

// Control is a net.Dialer Control function for callers with their own dialer:
// it refuses to connect to an address the policy refuses. It sees only the
// resolved IP, so host-name allowlist entries do not apply; prefer DialContext.
func (p URLPolicy) Control(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return &URLRefusedError{URL: address, Reason: "not an IP address at connect time"}
	}
	if reason := p.refusal(a); reason != "" {
		return &URLRefusedError{URL: address, Addr: a.WithZone(""), Reason: reason}
	}
	return nil
}

// Transport returns an http.Transport that connects only through DialContext
// and never through a proxy (a proxy would dial on our behalf, unchecked).
func (p URLPolicy) Transport() *http.Transport {
	return &http.Transport{
		DialContext:           p.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          10,
		IdleConnTimeout:       30 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// resolve returns the addresses of host that Check must judge: none for an
// allowlisted host name.
func (p URLPolicy) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if _, err := netip.ParseAddr(host); err != nil && p.hostAllowed(host) {
		return nil, nil
	}
	return p.lookupHost(ctx, host)
}

// lookupHost returns the addresses of host; an IP literal is its own answer.
func (p URLPolicy) lookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.WithZone("")}, nil
	}
	lookup := p.lookup
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	addrs, err := lookup(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	return addrs, nil
}

// hostAllowed reports whether a host name is allowlisted by name.
func (p URLPolicy) hostAllowed(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, e := range p.Allow {
		e = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(e)), ".")
		if e == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(e, "*."); ok {
			if strings.HasSuffix(host, "."+rest) {
				return true
			}
			continue
		}
		if host == e {
			return true
		}
	}
	return false
}

// addrAllowed reports whether a is inside an allowlisted IP or CIDR.
func (p URLPolicy) addrAllowed(a netip.Addr) bool {
	for _, e := range p.Allow {
		e = strings.TrimSpace(e)
		if pfx, err := netip.ParsePrefix(e); err == nil {
			if pfx.Contains(a) || pfx.Contains(a.Unmap()) {
				return true
			}
			continue
		}
		if ea, err := netip.ParseAddr(e); err == nil && (ea == a || ea.Unmap() == a.Unmap()) {
			return true
		}
	}
	return false
}

// refusal returns why a is refused, or "" if it may be contacted.
func (p URLPolicy) refusal(a netip.Addr) string {
	a = a.WithZone("")
	if p.addrAllowed(a) {
		return ""
	}
	if v4, ok := embeddedIPv4(a); ok {
		if p.addrAllowed(v4) {
			return ""
		}
		if r := addrClass(v4); r != "" {
			return r + " (embedded in " + a.String() + ")"
		}
		return ""
	}
	return addrClass(a)
}

var metadataAddr = netip.MustParseAddr("169.254.169.254")

// reserved lists special-purpose ranges that the netip predicates do not cover.
var reserved = []struct {
	prefix netip.Prefix
	name   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (carrier-grade NAT)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("2001::/32"), "Teredo tunnel"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
}

// addrClass names the class of a refused address, or "" for a public one.
func addrClass(a netip.Addr) string {
	switch {
	case a == metadataAddr:
		return "link-local (cloud metadata service)"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate():
		return "private"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	}
	for _, r := range reserved {
		if r.prefix.Contains(a) {
			return r.name
		}
	}
	return ""
}

var (
	nat64   = netip.MustParsePrefix("64:ff9b::/96")
	sixTo4  = netip.MustParsePrefix("2002::/16")
	compat4 = netip.MustParsePrefix("::/96")
)

// embeddedIPv4 returns the IPv4 address an IPv6 address stands for: IPv4-mapped
// (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d) or
// 6to4 (2002:AABB:CCDD::).
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	if a.Is4() {
		return netip.Addr{}, false
	}
	if a.Is4In6() {
		return a.Unmap(), true
	}
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixTo4.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	case compat4.Contains(a) && !a.IsUnspecified() && !a.IsLoopback():
		return netip.AddrFrom4([4]byte(b[12:16])), true
	}
	return netip.Addr{}, false
}

// safeURL renders u for errors: no credentials, no query string, no fragment.
func safeURL(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	c.ForceQuery = false
	c.Fragment = ""
	c.RawFragment = ""
	return c.String()
}
