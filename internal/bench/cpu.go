package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// clockTicks is USER_HZ, the unit of CPU times in /proc/PID/stat (100 on Linux).
const clockTicks = 100

// processCPU is the user+system CPU time this process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// findPostmaster returns the pid of the PostgreSQL server at adminURL when it
// runs on this machine (the parent of our backend), or 0.
func findPostmaster(ctx context.Context, adminURL string) int {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return 0
	}
	defer conn.Close(ctx)
	var backend int
	if conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend) != nil {
		return 0
	}
	st, err := procStat(backend)
	if err != nil {
		return 0
	}
	return st.ppid
}

type procStatus struct {
	ppid                         int
	utime, stime, cutime, cstime int64
}

func procStat(pid int) (procStatus, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStatus{}, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStatus{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 15 {
		return procStatus{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k], 10, 64); return v }
	return procStatus{ppid: int(n(1)), utime: n(11), stime: n(12), cutime: n(13), cstime: n(14)}, nil
}

// serverCPU is the CPU time of a PostgreSQL server so far: the postmaster's,
// that of its children it reaped (backends that ended), and that of its
// live children. 0 when pid is 0 or gone.
func serverCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	pm, err := procStat(pid)
	if err != nil {
		return 0
	}
	ticks := pm.utime + pm.stime + pm.cutime + pm.cstime
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		child, err := strconv.Atoi(filepath.Base(d))
		if err != nil || child == pid {
			continue
		}
		if st, err := procStat(child); err == nil && st.ppid == pid {
			ticks += st.utime + st.stime
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks
}
