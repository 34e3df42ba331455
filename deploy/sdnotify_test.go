package deploy_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/deploy"
)

// fakeManager listens where a service manager would and returns the socket
// name to put in NOTIFY_SOCKET.
func fakeManager(t *testing.T, name string) (*net.UnixConn, string) {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn, name
}

func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 4096)
	n, _, err := conn.ReadFromUnix(buf)
	require.NoError(t, err)
	return string(buf[:n])
}

func TestNotify(t *testing.T) {
	conn, name := fakeManager(t, filepath.Join(t.TempDir(), "notify.sock"))
	t.Setenv("NOTIFY_SOCKET", name)

	for _, tt := range []struct {
		send func() (bool, error)
		want string
	}{
		{deploy.Ready, "READY=1"},
		{deploy.Watchdog, "WATCHDOG=1"},
		{func() (bool, error) { return deploy.Status("claiming lanes A-D") }, "STATUS=claiming lanes A-D"},
		{func() (bool, error) { return deploy.Status("two\nlines\r\nREADY=1") }, "STATUS=two lines READY=1"},
		{deploy.Stopping, "STOPPING=1"},
		{func() (bool, error) { return deploy.Notify("READY=1\nSTATUS=ok") }, "READY=1\nSTATUS=ok"},
	} {
		sent, err := tt.send()
		require.NoError(t, err)
		assert.True(t, sent)
		assert.Equal(t, tt.want, receive(t, conn))
	}
	assert.Equal(t, name, os.Getenv("NOTIFY_SOCKET"), "the variable is left for child processes")
}

func TestNotifyAbstractSocket(t *testing.T) {
	conn, name := fakeManager(t, fmt.Sprintf("@opsd-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	t.Setenv("NOTIFY_SOCKET", name)
	sent, err := deploy.Ready()
	require.NoError(t, err)
	assert.True(t, sent)
	assert.Equal(t, "READY=1", receive(t, conn))
}

func TestNotifyWithoutManager(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	for _, send := range []func() (bool, error){deploy.Ready, deploy.Watchdog, deploy.Stopping} {
		sent, err := send()
		assert.NoError(t, err)
		assert.False(t, sent)
	}
}

func TestNotifyManagerGone(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "missing.sock"))
	sent, err := deploy.Ready()
	assert.Error(t, err)
	assert.False(t, sent)
}

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	for _, tt := range []struct {
		name, usec, pid string
		want            time.Duration
		ok              bool
	}{
		{"unset", "", "", 0, false},
		{"for this process", "30000000", self, 30 * time.Second, true},
		{"no pid given", "15000000", "", 15 * time.Second, true},
		{"for another process", "30000000", strconv.Itoa(os.Getpid() + 1), 0, false},
		{"malformed", "thirty", self, 0, false},
		{"zero", "0", self, 0, false},
		{"negative", "-5", self, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tt.usec)
			t.Setenv("WATCHDOG_PID", tt.pid)
			got, ok := deploy.WatchdogInterval()
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}
