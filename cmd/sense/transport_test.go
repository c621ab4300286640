package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/internal/tlstest"
	"github.com/sensehq/sense/sensetest"
)

func execute(t *testing.T, cmd *cobra.Command, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// TestProduceConsumeOverQUIC: sense produce and sense consume with
// --transport quic and a pinned fingerprint reach the node's QUIC listener.
func TestProduceConsumeOverQUIC(t *testing.T) {
	srv := sensetest.Start(t, "", sensetest.WithQUIC())
	fp, _ := srv.QUICFingerprint()
	quic := []string{"--transport", "quic", "--addr", srv.QUICAddr().String(), "--server-fingerprint", fp}
	out, err := execute(t, newProduceCmd(), "a\nb\nc\n", append([]string{"--pipeline", "cli"}, quic...)...)
	if err != nil || !strings.Contains(out, "acknowledged: 3") {
		t.Fatalf("produce: %q, %v", out, err)
	}
	out, err = execute(t, newConsumeCmd(), "", append([]string{"--pipeline", "cli", "--from", "beginning", "--output", "json"}, quic...)...)
	if err != nil {
		t.Fatalf("consume: %q, %v", out, err)
	}
	var values []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r struct{ Value string }
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		values = append(values, r.Value)
	}
	if strings.Join(values, ",") != "a,b,c" {
		t.Fatalf("consumed %v", values)
	}
	// Without a pin the command says how to get one.
	_, err = execute(t, newProduceCmd(), "x\n", "--pipeline", "cli", "--transport", "quic", "--addr", srv.QUICAddr().String())
	if err == nil || !strings.Contains(err.Error(), "--server-fingerprint") {
		t.Fatalf("no pin: %v", err)
	}
}

// TestProduceConsumeOverHTTP: sense produce and sense consume with
// --transport http reach the node's HTTP listener (h2c), and a refusal is
// counted by its code as over TCP.
func TestProduceConsumeOverHTTP(t *testing.T) {
	srv := sensetest.Start(t, "")
	h := []string{"--transport", "http", "--addr", srv.HTTPAddr().String()}
	out, err := execute(t, newProduceCmd(), "a\nb\nc\n", append([]string{"--pipeline", "cli", "--priority", "critical"}, h...)...)
	if err != nil || !strings.Contains(out, "acknowledged: 3") {
		t.Fatalf("produce: %q, %v", out, err)
	}
	out, err = execute(t, newConsumeCmd(), "", append([]string{"--pipeline", "cli", "--from", "beginning", "--output", "json"}, h...)...)
	if err != nil {
		t.Fatalf("consume: %q, %v", out, err)
	}
	var values []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r struct{ Value, Priority string }
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if r.Priority != "critical" {
			t.Fatalf("line %q: priority %q", line, r.Priority)
		}
		values = append(values, r.Value)
	}
	if strings.Join(values, ",") != "a,b,c" {
		t.Fatalf("consumed %v", values)
	}
	// -n waits for new events, read with the live tail.
	done := make(chan string, 1)
	go func() {
		out, err := execute(t, newConsumeCmd(), "", append([]string{"--pipeline", "cli", "--from", "end", "-n", "2"}, h...)...)
		if err != nil {
			out += err.Error()
		}
		done <- out
	}()
	time.Sleep(300 * time.Millisecond)
	if out, err := execute(t, newProduceCmd(), "d\ne\n", append([]string{"--pipeline", "cli"}, h...)...); err != nil {
		t.Fatalf("produce: %q, %v", out, err)
	}
	select {
	case out := <-done:
		if !strings.Contains(out, "\td\t") || !strings.Contains(out, "\te\t") || strings.Contains(out, "\ta\t") {
			t.Fatalf("tail: %q", out)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("consume -n 2 did not end")
	}
	// Nobody listening: the error names HTTP.
	_, err = execute(t, newProduceCmd(), "x\n", "--pipeline", "cli", "--transport", "http", "--addr", "127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "over HTTP") {
		t.Fatalf("nobody listening: %v", err)
	}
}

func TestTransportFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--transport", "carrier-pigeon"}, "use tcp, quic or http"},
		{[]string{"--cert-file", "client.crt"}, "--cert-file and --key-file go together"},
		{[]string{"--transport", "quic", "--tls"}, "QUIC always speaks TLS"},
		{[]string{"--tls", "--ca-file", "/nonexistent/ca.crt"}, "--ca-file"},
		{[]string{"--transport", "http", "--addr", "http://127.0.0.1:1", "--insecure"}, "http:// but a TLS option"},
	} {
		_, err := execute(t, newProduceCmd(), "x\n", append([]string{"--pipeline", "p"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

// TestProduceConsumeOverTLS: sense produce and consume with --tls,
// --ca-file and a client certificate reach a native listener that requires
// one; without the certificate, or without --tls, the error says what to
// give.
func TestProduceConsumeOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "ca")
	srvCert, cli := ca.Server(t, "server"), ca.Client(t, "cli-user")
	srv := sensetest.Start(t, "", func(c *config.Config) {
		c.TLS = config.TLS{CertFile: srvCert.CertFile, KeyFile: srvCert.KeyFile, ClientCAFile: ca.CertFile,
			Native: config.ListenerTLS{Enabled: config.Bool(true)}}
	})
	addr := srv.NativeAddr().String()
	flags := []string{"--addr", addr, "--tls", "--ca-file", ca.CertFile, "--cert-file", cli.CertFile, "--key-file", cli.KeyFile}
	out, err := execute(t, newProduceCmd(), "a\nb\n", append([]string{"--pipeline", "tls"}, flags...)...)
	if err != nil || !strings.Contains(out, "acknowledged: 2") {
		t.Fatalf("produce: %q, %v", out, err)
	}
	out, err = execute(t, newConsumeCmd(), "", append([]string{"--pipeline", "tls", "--from", "beginning", "--output", "json", "-n", "2"}, flags...)...)
	if err != nil || strings.Count(out, "\n") != 2 {
		t.Fatalf("consume: %q, %v", out, err)
	}
	_, err = execute(t, newProduceCmd(), "x\n", "--pipeline", "tls", "--addr", addr, "--ca-file", ca.CertFile)
	if err == nil || !strings.Contains(err.Error(), "--cert-file") {
		t.Fatalf("without a client certificate: %v", err)
	}
	_, err = execute(t, newProduceCmd(), "x\n", "--pipeline", "tls", "--addr", addr)
	if err == nil || !strings.Contains(err.Error(), "--tls") {
		t.Fatalf("without TLS: %v", err)
	}
}
