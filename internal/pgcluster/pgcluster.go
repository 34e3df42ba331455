// Package pgcluster runs a private PostgreSQL server from the installed server
// binaries: the throwaway cluster of the tests and the local database of
// `opsd dev`. When the process runs as root it runs the server as the
// postgres OS user, since initdb and postgres refuse to run as root.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// ErrNoServer means no PostgreSQL server binaries were found.
var ErrNoServer = errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found: install the Debian package \"postgresql\" (apt-get install -y postgresql) or set PG_BINDIR")

// Options configure a cluster.
type Options struct {
	// DataDir holds the cluster. Empty means a temporary directory removed by Stop.
	DataDir string
	// Port to listen on at 127.0.0.1. 0 picks a free port (kept in DataDir/opsd.port for reuse).
	Port int
	// Settings are extra server settings (-c name=value).
	Settings map[string]string
}

// Cluster is a running server.
type Cluster struct {
	URL     string // superuser URL, database postgres
	DataDir string
	Port    int

	bindir string
	temp   bool
	cred   *syscall.Credential
	root   string // the directory that holds data, socket and log
}

// FindBinDir locates the directory with initdb and pg_ctl: $PG_BINDIR, the
// newest /usr/lib/postgresql/<v>/bin, or $PATH.
func FindBinDir() (string, error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
		return "", fmt.Errorf("PG_BINDIR=%s has no initdb and pg_ctl: %w", d, ErrNoServer)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", ErrNoServer
}

func versionOf(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// Start initializes the cluster when DataDir is new (or temporary) and starts it.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	bindir, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bindir: bindir}
	if os.Geteuid() == 0 {
		c.cred, err = postgresCredential()
		if err != nil {
			return nil, err
		}
	}
	if o.DataDir == "" {
		c.root, err = os.MkdirTemp("", "opsd-pg-")
		if err != nil {
			return nil, err
		}
		c.temp = true
	} else {
		c.root = o.DataDir
		if err := os.MkdirAll(c.root, 0o700); err != nil {
			return nil, fmt.Errorf("create data dir %s: %w", c.root, err)
		}
	}
	if err := c.chown(c.root); err != nil {
		return nil, err
	}
	c.DataDir = filepath.Join(c.root, "pgdata")
	if _, err := os.Stat(filepath.Join(c.DataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := c.initdb(ctx); err != nil {
			c.cleanup()
			return nil, err
		}
	}
	c.Port = o.Port
	if c.Port == 0 {
		c.Port = c.savedPort()
	}
	if c.Port == 0 || !portFree(c.Port) {
		if c.Port, err = freePort(); err != nil {
			c.cleanup()
			return nil, err
		}
	}
	_ = os.WriteFile(filepath.Join(c.root, "opsd.port"), []byte(strconv.Itoa(c.Port)), 0o600)
	if err := c.start(ctx, o.Settings); err != nil {
		c.cleanup()
		return nil, err
	}
	c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.Port)
	return c, nil
}

func (c *Cluster) initdb(ctx context.Context) error {
	out, err := c.command(ctx, "initdb", "-D", c.DataDir, "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync").CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb %s: %w: %s", c.DataDir, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (c *Cluster) start(ctx context.Context, settings map[string]string) error {
	opts := []string{
		"-p " + strconv.Itoa(c.Port),
		"-k " + c.root,
		"-c listen_addresses=127.0.0.1",
		"-c max_connections=300",
		"-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
		"-c shared_buffers=128MB",
	}
	for k, v := range settings {
		opts = append(opts, fmt.Sprintf("-c %s=%s", k, v))
	}
	logfile := filepath.Join(c.root, "postgres.log")
	out, err := c.command(ctx, "pg_ctl", "-D", c.DataDir, "-l", logfile, "-w", "-t", "60",
		"-o", strings.Join(opts, " "), "start").CombinedOutput()
	if err != nil {
		tail, _ := os.ReadFile(logfile)
		return fmt.Errorf("pg_ctl start: %w: %s\n%s", err, strings.TrimSpace(string(out)), lastLines(string(tail), 10))
	}
	return nil
}

// Stop stops the server (fast shutdown) and removes a temporary cluster.
func (c *Cluster) Stop() error {
	out, err := c.command(context.Background(), "pg_ctl", "-D", c.DataDir, "-m", "fast", "-w", "-t", "60", "stop").CombinedOutput()
	c.cleanup()
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Running reports whether the postmaster of this cluster is alive.
func (c *Cluster) Running() bool {
	err := c.command(context.Background(), "pg_ctl", "-D", c.DataDir, "status").Run()
	return err == nil
}

func (c *Cluster) cleanup() {
	if c.temp {
		_ = os.RemoveAll(c.root)
	}
}

func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bindir, name), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
		cmd.Dir = "/"
	}
	return cmd
}

func (c *Cluster) chown(dir string) error {
	if c.cred == nil {
		return nil
	}
	if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
		return fmt.Errorf("give %s to the postgres user: %w", dir, err)
	}
	return nil
}

func (c *Cluster) savedPort() int {
	b, err := os.ReadFile(filepath.Join(c.root, "opsd.port"))
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return p
}

func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres OS user to run the server (created by the Debian package \"postgresql\"): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
