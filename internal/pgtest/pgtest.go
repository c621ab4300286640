// Package pgtest starts a PostgreSQL server for tests: Debian's
// postgresql, initdb in a temporary directory, listening on a loopback
// port, as the system user postgres when the tests run as root (PostgreSQL
// refuses to run as root). A missing server skips the test, or fails it
// when CI is set; scripts/test.sh installs it.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sensehq/sense/internal/loopback"
)

// inCI reports whether a missing server is a failure.
func inCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// binDir finds the newest /usr/lib/postgresql/N/bin holding initdb.
func binDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(dirs[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(dirs[j]))))
		return vi < vj
	})
	if len(dirs) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p)
		}
		return ""
	}
	return filepath.Dir(dirs[len(dirs)-1])
}

// Start runs a server until the test ends and returns its URL (database
// postgres, user sense, no password).
func Start(t testing.TB) string {
	t.Helper()
	bin := binDir()
	if bin == "" {
		msg := "PostgreSQL is not installed (Debian package postgresql); scripts/test.sh installs it"
		if inCI() {
			t.Fatal(msg)
		}
		t.Skip(msg + " (this would fail with CI set)")
	}
	dir, err := os.MkdirTemp("", "sense-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, PostgreSQL needs another user: %v (the postgresql package creates postgres)", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "sense", "-A", "trust", "--no-sync", "-E", "UTF8")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	addrs, err := loopback.Addrs(1)
	if err != nil {
		t.Fatal(err)
	}
	port := addrs[0][strings.LastIndexByte(addrs[0], ':')+1:]
	logPath := filepath.Join(dir, "postgres.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", port, "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=50", "-c", "shared_buffers=32MB")
	srv.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	srv.Stdout, srv.Stderr = logf, logf
	srv.Dir = dir
	if err := srv.Start(); err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	logf.Close()
	t.Cleanup(func() {
		srv.Process.Signal(syscall.SIGINT) // fast shutdown
		done := make(chan struct{})
		go func() { srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			srv.Process.Kill()
			<-done
		}
	})
	dsn := fmt.Sprintf("postgres://sense@127.0.0.1:%s/postgres?sslmode=disable", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := pgx.Connect(ctx, dsn)
		if err == nil {
			c.Close(ctx)
			cancel()
			return dsn
		}
		cancel()
		if time.Now().After(deadline) {
			logs, _ := os.ReadFile(logPath)
			t.Fatalf("postgres did not accept connections: %v\n%s", err, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
