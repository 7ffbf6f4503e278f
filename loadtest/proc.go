package loadtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver for creating bench databases
)

// AdminToken is the superuser token of every Gatehouse the tool starts.
const AdminToken = "gh_su_bench-superuser-token-0123456789abcdef"

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
// it is 100 on every Linux architecture Go supports.
const clockTicks = 100

// ProcStat is a process's CPU time and resident memory at one instant.
type ProcStat struct {
	CPU time.Duration // utime + stime
	RSS int64         // bytes
}

// ReadProc reads /proc/<pid>/stat (fields 14 and 15: utime, stime) and
// /proc/<pid>/status (VmRSS).
func ReadProc(pid int) (ProcStat, error) {
	var st ProcStat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// The command name (field 2) may hold spaces; fields restart after ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return st, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return st, fmt.Errorf("short /proc/%d/stat", pid)
	}
	// f[0] is field 3 (state): utime is field 14 = f[11], stime f[12].
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stm, _ := strconv.ParseInt(f[12], 10, 64)
	st.CPU = time.Duration(ut+stm) * time.Second / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			st.RSS = kb * 1024
		}
	}
	return st, nil
}

// ServerOptions start one Gatehouse process.
type ServerOptions struct {
	// Binary is the gatehouse executable; "self" re-executes this tool in
	// its serve mode (same server package, plus a pprof listener).
	Binary      string
	DatabaseURL string
	RootKey     []byte
	Synchronous string // SQLite: NORMAL or FULL
	DataDir     string
	// PprofAddr (self mode only) serves net/http/pprof there.
	PprofAddr string
	Env       map[string]string
	Stderr    io.Writer
}

// Server is a running Gatehouse process.
type Server struct {
	URL     string
	Cmd     *exec.Cmd
	Ready   time.Duration // from exec to the first 200 from /readyz
	Options ServerOptions
}

// PID of the process.
func (s *Server) PID() int { return s.Cmd.Process.Pid }

// FreeAddr returns a free loopback address.
func FreeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// StartServer starts Gatehouse and waits until /readyz answers 200.
func StartServer(ctx context.Context, o ServerOptions) (*Server, error) {
	addr := FreeAddr()
	if o.RootKey == nil {
		o.RootKey = make([]byte, 32)
		_, _ = rand.Read(o.RootKey)
	}
	if o.Synchronous == "" {
		o.Synchronous = "NORMAL"
	}
	bin, args := o.Binary, []string{"serve"}
	if bin == "self" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		bin = exe
		if o.PprofAddr != "" {
			args = append(args, "-pprof", o.PprofAddr)
		}
	}
	cmd := exec.Command(bin, args...)
	url := "http://" + addr
	env := map[string]string{
		"GATEHOUSE_ADDR":               addr,
		"GATEHOUSE_PUBLIC_URL":         url,
		"GATEHOUSE_DATA_DIR":           o.DataDir,
		"GATEHOUSE_DATABASE_URL":       o.DatabaseURL,
		"GATEHOUSE_ADMIN_TOKEN":        AdminToken,
		"GATEHOUSE_ROOT_KEY":           base64.StdEncoding.EncodeToString(o.RootKey),
		"GATEHOUSE_LOG_LEVEL":          "error",
		"GATEHOUSE_SQLITE_SYNCHRONOUS": o.Synchronous,
		// The load comes from one address at rates far above the
		// defaults, which are there to stop floods.
		"GATEHOUSE_RATE_LIMIT_IP":     "0",
		"GATEHOUSE_RATE_LIMIT_TENANT": "0",
	}
	for k, v := range o.Env {
		env[k] = v
	}
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if o.Stderr != nil {
		cmd.Stderr = o.Stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{URL: url, Cmd: cmd, Options: o}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				s.Ready = time.Since(start)
				return s, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.Stop()
			return nil, fmt.Errorf("gatehouse did not become ready at %s", url)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Stop ends the process (SIGTERM, then SIGKILL after 5 s).
func (s *Server) Stop() {
	if s == nil || s.Cmd.Process == nil {
		return
	}
	_ = s.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.Cmd.Process.Kill()
		<-done
	}
}

// NewDatabase returns the URL of a fresh database: a SQLite file in dir,
// or a new database on the PostgreSQL server at pgURL.
func NewDatabase(ctx context.Context, engine, dir, pgURL string) (string, error) {
	switch engine {
	case "sqlite":
		return "sqlite://" + filepath.Join(dir, "gatehouse.db"), nil
	case "postgres":
		db, err := sql.Open("pgx", pgURL)
		if err != nil {
			return "", err
		}
		defer db.Close()
		name := fmt.Sprintf("gatehouse_bench_%d", time.Now().UnixNano())
		if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
			return "", fmt.Errorf("create database: %w", err)
		}
		i := strings.LastIndexByte(pgURL[:strings.IndexAny(pgURL+"?", "?")], '/')
		return pgURL[:i+1] + name + pgURL[strings.IndexAny(pgURL+"?", "?"):], nil
	}
	return "", fmt.Errorf("engine %q: want sqlite or postgres", engine)
}

// DropDatabase removes a database NewDatabase made on PostgreSQL.
func DropDatabase(ctx context.Context, pgURL, dbURL string) {
	if !strings.HasPrefix(dbURL, "postgres") {
		return
	}
	db, err := sql.Open("pgx", pgURL)
	if err != nil {
		return
	}
	defer db.Close()
	path := dbURL[:strings.IndexAny(dbURL+"?", "?")]
	name := path[strings.LastIndexByte(path, '/')+1:]
	if strings.HasPrefix(name, "gatehouse_bench_") {
		_, _ = db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
}

func trimBody(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 300 {
		b = append(b[:300:300], "..."...)
	}
	return string(b)
}
