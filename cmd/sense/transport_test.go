package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/spf13/cobra"

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

func TestTransportFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--transport", "http"}, "POST NDJSON"},
		{[]string{"--transport", "carrier-pigeon"}, "use tcp or quic"},
		{[]string{"--server-fingerprint", strings.Repeat("a", 64)}, "--transport quic only"},
	} {
		_, err := execute(t, newProduceCmd(), "x\n", append([]string{"--pipeline", "p"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
