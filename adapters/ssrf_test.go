package adapters

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeDNS resolves the names it knows and fails for the others.
func fakeDNS(names map[string][]string) func(context.Context, string) ([]netip.Addr, error) {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		ips, ok := names[host]
		if !ok {
			return nil, errors.New("no such host")
		}
		var out []netip.Addr
		for _, ip := range ips {
			out = append(out, netip.MustParseAddr(ip))
		}
		return out, nil
	}
}

func TestURLPolicyCheck(t *testing.T) {
	t.Parallel()
	dns := fakeDNS(map[string][]string{
		"public.example":   {"93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"},
		"internal.example": {"10.0.0.5"},
		"mixed.example":    {"1.1.1.1", "192.168.0.10"},
		"a.corp.example":   {"10.9.9.9"},
		"meta.example":     {"169.254.169.254"},
	})
	tests := []struct {
		name   string
		allow  []string
		url    string
		reason string // "" means allowed
	}{
		{"public IPv4 literal", nil, "https://93.184.216.34/health", ""},
		{"public IPv6 literal", nil, "http://[2606:4700:4700::1111]:8080/", ""},
		{"public host", nil, "https://public.example/status?x=1", ""},
		{"10/8", nil, "http://10.1.2.3/", "private"},
		{"172.16/12", nil, "http://172.16.0.1/", "private"},
		{"192.168/16", nil, "http://192.168.1.1/", "private"},
		{"loopback", nil, "http://127.0.0.1:8080/admin", "loopback"},
		{"loopback elsewhere in 127/8", nil, "http://127.3.2.1/", "loopback"},
		{"IPv6 loopback", nil, "http://[::1]/", "loopback"},
		{"metadata", nil, "http://169.254.169.254/latest/meta-data/", "cloud metadata"},
		{"link-local v4", nil, "http://169.254.1.1/", "link-local"},
		{"link-local v6 with zone", nil, "http://[fe80::1%25eth0]/", "link-local"},
		{"unique local v6", nil, "http://[fd00:ec2::254]/", "private"},
		{"mapped loopback", nil, "http://[::ffff:127.0.0.1]/", "loopback"},
		{"mapped metadata hex", nil, "http://[::ffff:a9fe:a9fe]/", "cloud metadata"},
		{"NAT64 loopback", nil, "http://[64:ff9b::7f00:1]/", "loopback"},
		{"6to4 private", nil, "http://[2002:a00:1::]/", "private"},
		{"IPv4-compatible", nil, "http://[::10.0.0.1]/", "private"},
		{"unspecified v4", nil, "http://0.0.0.0:9000/", "unspecified"},
		{"unspecified v6", nil, "http://[::]/", "unspecified"},
		{"this network", nil, "http://0.1.2.3/", "this-network"},
		{"multicast v4", nil, "http://224.0.0.1/", "multicast"},
		{"multicast v6", nil, "http://[ff02::1]/", "multicast"},
		{"CGNAT (Alibaba metadata)", nil, "http://100.100.100.200/", "carrier-grade NAT"},
		{"broadcast", nil, "http://255.255.255.255/", "reserved"},
		{"host resolving private", nil, "http://internal.example/", "private"},
		{"host with one private address", nil, "http://mixed.example/", "private"},
		{"host resolving to metadata", nil, "http://meta.example/", "cloud metadata"},
		{"unresolvable host", nil, "http://nowhere.example/", "no such host"},
		{"file scheme", nil, "file:///etc/passwd", "scheme"},
		{"gopher scheme", nil, "gopher://public.example/", "scheme"},
		{"no scheme", nil, "public.example/x", "scheme"},
		{"no host", nil, "http:///x", "no host"},
		{"unparsable", nil, "http://[::1", "invalid URL"},
		{"allow CIDR", []string{"10.0.0.0/8"}, "http://10.1.2.3/", ""},
		{"allow CIDR not matching", []string{"10.0.0.0/16"}, "http://10.1.2.3/", "private"},
		{"allow IP", []string{"127.0.0.1"}, "http://127.0.0.1:9/", ""},
		{"allow IP covers mapped form", []string{"127.0.0.1"}, "http://[::ffff:127.0.0.1]/", ""},
		{"allow host", []string{"internal.example"}, "http://INTERNAL.example./", ""},
		{"allow wildcard", []string{"*.corp.example"}, "https://a.corp.example/", ""},
		{"wildcard is not the apex", []string{"*.corp.example"}, "https://corp.example/", "no such host"},
		{"allowlisted host does not allow others", []string{"internal.example"}, "http://mixed.example/", "private"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := URLPolicy{Allow: tt.allow, lookup: dns}
			err := p.Check(context.Background(), tt.url)
			if tt.reason == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrURLRefused)
			assert.Contains(t, err.Error(), tt.reason)
			var re *URLRefusedError
			require.ErrorAs(t, err, &re)
		})
	}
}

func TestURLPolicyErrorHidesSecrets(t *testing.T) {
	t.Parallel()
	err := URLPolicy{}.Check(context.Background(), "http://user:hunter2@10.0.0.1/hook?token=abc#frag")
	require.Error(t, err)
	msg := err.Error()
	assert.Contains(t, msg, "http://10.0.0.1/hook")
	assert.Contains(t, msg, "10.0.0.1 is a private address")
	for _, secret := range []string{"hunter2", "token", "abc", "frag", "user"} {
		assert.NotContains(t, msg, secret)
	}
}

// localServer starts a loopback server that answers body, and returns it
// with its port.
func localServer(t *testing.T, body string) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, srv.URL[strings.LastIndex(srv.URL, ":")+1:]
}

func TestURLPolicyDialRebinding(t *testing.T) {
	t.Parallel()
	_, port := localServer(t, "internal secret")

	// The first answer is public (Check passes), later ones point at loopback.
	var lookups atomic.Int32
	p := URLPolicy{lookup: func(context.Context, string) ([]netip.Addr, error) {
		if lookups.Add(1) == 1 {
			return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}}
	target := "http://rebind.example:" + port + "/"
	require.NoError(t, p.Check(context.Background(), target))

	tr := p.Transport()
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, target, nil)
	require.NoError(t, err)
	resp, err := client.Do(req)
	if resp != nil {
		_ = resp.Body.Close()
	}
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrURLRefused)
	assert.Contains(t, err.Error(), "loopback")
}

func TestURLPolicyDialAllowed(t *testing.T) {
	t.Parallel()
	srv, port := localServer(t, "ok")

	tests := []struct {
		name  string
		allow []string
		url   string
		ok    bool
	}{
		{"loopback refused", nil, srv.URL, false},
		{"allowlisted IP", []string{"127.0.0.1"}, srv.URL, true},
		{"allowlisted CIDR via name", []string{"127.0.0.0/8"}, "http://svc.test:" + port, true},
		{"allowlisted name", []string{"svc.test"}, "http://svc.test:" + port, true},
		{"name resolving to loopback", nil, "http://svc.test:" + port, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := URLPolicy{Allow: tt.allow, lookup: fakeDNS(map[string][]string{"svc.test": {"127.0.0.1"}})}
			tr := p.Transport()
			t.Cleanup(tr.CloseIdleConnections)
			req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, tt.url, nil)
			require.NoError(t, err)
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if !tt.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			require.NoError(t, resp.Body.Close())
			assert.Equal(t, "ok", string(body))
		})
	}
}

func FuzzURLPolicyCheck(f *testing.F) {
	for _, s := range []string{
		"http://10.0.0.1/", "https://93.184.216.34/", "http://[::ffff:127.0.0.1]/",
		"http://[fe80::1%25eth0]:80/", "file:///etc/passwd", "http://user:pw@host.example/?q#f",
		"http://[64:ff9b::a9fe:a9fe]/", "http://0x7f.1/", "http://%zz/", "", "http://[", "HTTP://[::]:0",
	} {
		f.Add(s)
	}
	p := URLPolicy{Allow: []string{"10.1.0.0/16", "*.corp.example", "bad[entry"}, lookup: func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("1.1.1.1")}, nil
	}}
	f.Fuzz(func(t *testing.T, raw string) {
		err := p.Check(context.Background(), raw)
		if err != nil && !errors.Is(err, ErrURLRefused) {
			t.Fatalf("Check(%q) = %v, want an ErrURLRefused", raw, err)
		}
	})
}

func TestURLPolicyControl(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	tests := []struct {
		name  string
		allow []string
		ok    bool
	}{
		{"loopback refused", nil, false},
		{"allowlisted CIDR", []string{"127.0.0.0/8"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := net.Dialer{Control: URLPolicy{Allow: tt.allow}.Control}
			conn, err := d.DialContext(context.Background(), "tcp", addr)
			if !tt.ok {
				require.ErrorIs(t, err, ErrURLRefused)
				return
			}
			require.NoError(t, err)
			require.NoError(t, conn.Close())
		})
	}
	assert.ErrorIs(t, URLPolicy{}.Control("tcp", "[::ffff:169.254.169.254]:80", nil), ErrURLRefused)
	assert.NoError(t, URLPolicy{}.Control("tcp", "93.184.216.34:443", nil))
}
