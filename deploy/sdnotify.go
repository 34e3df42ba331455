// Package deploy holds what opsd needs from the places it runs: the
// sd_notify protocol for systemd (readiness, watchdog, stopping, status),
// and, as files beside this package, the systemd unit, the Fly.io
// configuration, the container image and the Supabase webhook that wakes
// opsd when a run is queued. The tests in this package check those files.
package deploy

import (
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notify sends state, one or more newline-separated VAR=VALUE assignments,
// to the service manager at $NOTIFY_SOCKET (a unixgram socket; a leading '@'
// names an abstract socket). It returns false and no error when there is no
// service manager to tell, and true once the datagram is sent.
func Notify(state string) (bool, error) {
	return daemon.SdNotify(false, state)
}

// Ready tells the service manager that startup is finished (READY=1): with
// Type=notify, systemd holds back units ordered after opsd until then.
func Ready() (bool, error) { return Notify(daemon.SdNotifyReady) }

// Stopping tells the service manager that a graceful shutdown has begun
// (STOPPING=1).
func Stopping() (bool, error) { return Notify(daemon.SdNotifyStopping) }

// Watchdog pings the service manager's watchdog (WATCHDOG=1). Send it every
// half of WatchdogInterval, and only while the daemon's loops make progress.
func Watchdog() (bool, error) { return Notify(daemon.SdNotifyWatchdog) }

// Status sets the one-line status shown by systemctl status (STATUS=...).
// Newlines in s are replaced by spaces: they would start new assignments.
func Status(s string) (bool, error) {
	return Notify("STATUS=" + strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s))
}

// WatchdogInterval returns the watchdog timeout the service manager set
// for this process (WATCHDOG_USEC, when WATCHDOG_PID is unset or is this
// process) and true, or false when no watchdog is expected or the variables
// are malformed.
func WatchdogInterval() (time.Duration, bool) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return 0, false
	}
	return d, true
}
