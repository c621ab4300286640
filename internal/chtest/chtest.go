// Package chtest starts a ClickHouse server for tests: Debian's
// clickhouse-server, with a config of its own in a temporary directory,
// its HTTP interface on a loopback port. A missing server skips the test,
// or fails it when CI is set; scripts/test.sh installs it.
package chtest

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensehq/sense/internal/loopback"
)

const server = "/usr/sbin/clickhouse-server"

// Start runs a server until the test ends and returns the URL of its HTTP
// interface (user default, no password).
func Start(t testing.TB) string {
	t.Helper()
	bin := server
	if _, err := os.Stat(bin); err != nil {
		p, lerr := exec.LookPath("clickhouse-server")
		if lerr != nil {
			msg := "ClickHouse is not installed (Debian package clickhouse-server); scripts/test.sh installs it"
			if v := os.Getenv("CI"); v != "" && v != "false" && v != "0" {
				t.Fatal(msg)
			}
			t.Skip(msg + " (this would fail with CI set)")
		}
		bin = p
	}
	dir, err := os.MkdirTemp("", "sense-chtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	addrs, err := loopback.Addrs(3)
	if err != nil {
		t.Fatal(err)
	}
	port := func(a string) string { return a[strings.LastIndexByte(a, ':')+1:] }
	users := `<yandex><profiles><default><max_memory_usage>1000000000</max_memory_usage></default></profiles>
<users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
<quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas></yandex>`
	cfg := fmt.Sprintf(`<yandex>
  <logger><level>warning</level><log>%[1]s/server.log</log><errorlog>%[1]s/err.log</errorlog></logger>
  <http_port>%[2]s</http_port>
  <tcp_port>%[3]s</tcp_port>
  <interserver_http_port>%[4]s</interserver_http_port>
  <listen_host>127.0.0.1</listen_host>
  <path>%[1]s/data/</path>
  <tmp_path>%[1]s/tmp/</tmp_path>
  <user_files_path>%[1]s/user_files/</user_files_path>
  <format_schema_path>%[1]s/format_schemas/</format_schema_path>
  <users_config>%[1]s/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
</yandex>`, dir, port(addrs[0]), port(addrs[1]), port(addrs[2]))
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(users), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config-file="+filepath.Join(dir, "config.xml"))
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start clickhouse-server: %v", err)
	}
	logf.Close()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	u := "http://" + addrs[0]
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := Query(u, "SELECT 1"); err == nil {
			return u
		}
		if time.Now().After(deadline) {
			logs, _ := os.ReadFile(filepath.Join(dir, "err.log"))
			out, _ := os.ReadFile(filepath.Join(dir, "stdout.log"))
			t.Fatalf("clickhouse-server did not answer within 30s:\n%s\n%s", out, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Query runs q over the HTTP interface at u and returns its answer.
func Query(u, q string) (string, error) {
	resp, err := http.Post(u+"/?query="+url.QueryEscape(q), "text/plain", nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("clickhouse: HTTP %d: %s", resp.StatusCode, b)
	}
	return strings.TrimSpace(string(b)), nil
}
