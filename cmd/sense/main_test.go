package main

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"version"}, &stdout, &stderr); code != 0 {
		t.Fatalf("sense version exited %d; stderr: %s", code, stderr.String())
	}
	got := stdout.String()
	suffix := fmt.Sprintf(" (%s, %s/%s)\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if !strings.HasPrefix(got, "sense ") || !strings.HasSuffix(got, suffix) {
		t.Fatalf("sense version printed %q, want \"sense <version>%s\"", got, suffix)
	}
	if v := strings.TrimSuffix(strings.TrimPrefix(got, "sense "), suffix); v == "" || strings.Contains(v, " ") {
		t.Fatalf("sense version printed version %q, want one non-empty word", v)
	}
	if stderr.Len() != 0 {
		t.Fatalf("sense version wrote to stderr: %q", stderr.String())
	}
}

func TestVersionFromLinker(t *testing.T) {
	old := version
	t.Cleanup(func() { version = old })
	version = "v9.8.7"
	var stdout bytes.Buffer
	if code := run([]string{"version"}, &stdout, &bytes.Buffer{}); code != 0 {
		t.Fatalf("sense version exited %d", code)
	}
	if !strings.HasPrefix(stdout.String(), "sense v9.8.7 (") {
		t.Fatalf("sense version printed %q, want it to start with \"sense v9.8.7 (\"", stdout.String())
	}
}

func TestErrorsGoToStderr(t *testing.T) {
	tests := [][]string{
		{"no-such-command"},
		{"version", "extra"},
		{"--no-such-flag"},
	}
	for _, args := range tests {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 1 {
			t.Errorf("sense %s exited %d, want 1", strings.Join(args, " "), code)
		}
		if !strings.HasPrefix(stderr.String(), "sense: ") {
			t.Errorf("sense %s: stderr = %q, want an error starting with \"sense: \"", strings.Join(args, " "), stderr.String())
		}
		if stdout.Len() != 0 {
			t.Errorf("sense %s: stdout = %q, want nothing", strings.Join(args, " "), stdout.String())
		}
	}
}

func TestRootHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("sense --help exited %d; stderr: %s", code, stderr.String())
	}
	for _, want := range []string{"sovereign event-ingestion engine", "Examples:", "sense version"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("sense --help does not mention %q:\n%s", want, stdout.String())
		}
	}
}
