package main

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func ids(peers []Peer) []string {
	var out []string
	for _, p := range peers {
		out = append(out, p.ID)
	}
	return out
}

func TestSelectPeers(t *testing.T) {
	all := allPeers()
	for _, tc := range []struct {
		list string
		want []string
	}{
		{"", ids(all)},
		{"all", ids(all)},
		{"nats", []string{"sense", "nats-syncalways", "nats-default"}},
		{"redis-everysec, sense", []string{"sense", "redis-everysec"}},
		{"Redis,nats-default", []string{"sense", "nats-default", "redis-always", "redis-everysec"}},
	} {
		got, err := selectPeers(all, tc.list)
		if err != nil {
			t.Fatalf("%q: %v", tc.list, err)
		}
		if !slices.Equal(ids(got), tc.want) {
			t.Errorf("%q: got %v, want %v", tc.list, ids(got), tc.want)
		}
	}
	if _, err := selectPeers(all, "nats,kafka"); err == nil || !strings.Contains(err.Error(), `"kafka"`) {
		t.Fatalf("unknown system: err = %v", err)
	}
}

func TestRatiosAreSensesRateOverEach(t *testing.T) {
	r := newReport(Workload{Duration: time.Second, Size: 100, Rate: 10, Window: 1})
	r.add("sense", &SystemResult{System: "Sense", PublishRate: 900, MaxRate: &MaxRate{PublishRate: 900}})
	r.add("a", &SystemResult{System: "A", PublishRate: 300, MaxRate: &MaxRate{PublishRate: 300}})
	r.add("b", &SystemResult{System: "B", PublishRate: 0})
	r.computeRatios()
	if got := r.Systems["sense"].Ratio; got == nil || *got != 1 {
		t.Fatalf("sense ratio %v, want 1", got)
	}
	if got := r.Systems["a"].Ratio; got == nil || *got != 3 {
		t.Fatalf("a ratio %v, want 3", got)
	}
	if got := r.Systems["b"].Ratio; got != nil {
		t.Fatalf("b ratio %v with no rate, want none", *got)
	}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"3.00x", "1.00x", "900", "machine:"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestThousands(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999.4: "999", 1000: "1,000", 1234567.8: "1,234,568", -12345: "-12,345"} {
		if got := thousands(v); got != want {
			t.Errorf("thousands(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseFlags([]string{"--duration", "3s", "--size", "200", "--rate", "500", "--window", "16", "--systems", "nats", "--out", "x"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	want := options{Workload: Workload{Duration: 3 * time.Second, Size: 200, Rate: 500, Window: 16}, Systems: "nats", Out: "x"}
	if o != want {
		t.Fatalf("got %+v, want %+v", o, want)
	}
	if _, err := parseFlags([]string{"--size", "10"}, &stderr); err == nil || !strings.Contains(err.Error(), "--size") {
		t.Fatalf("--size 10: err = %v", err)
	}
}

func TestCheckPeersNamesEachFailureOnce(t *testing.T) {
	missing := errors.New("tool not found")
	peers := []Peer{
		{ID: "a"},
		{ID: "b-1", Check: func() error { return missing }},
		{ID: "b-2", Check: func() error { return missing }},
		{ID: "c", Check: func() error { return nil }},
	}
	err := checkPeers(peers)
	if !errors.Is(err, missing) || err.Error() != "b-1, b-2: tool not found" {
		t.Fatalf("checkPeers = %v", err)
	}
	if err := checkPeers(peers[:1]); err != nil {
		t.Fatal(err)
	}
}
