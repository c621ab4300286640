package httpedge_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/sensehq/sense/edge/httpedge"
	"github.com/sensehq/sense/sensetest"
)

// curlPath finds curl; without it the test is skipped, except under CI
// (CI=true), where scripts/test.sh installs it and its absence is a failure.
func curlPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is not installed (scripts/test.sh installs it): ", err)
		}
		t.Skip("curl is not installed: ", err)
	}
	return p
}

// TestCurl posts NDJSON and reads it back with curl, over h2c with prior
// knowledge and over HTTP/1.1.
func TestCurl(t *testing.T) {
	curl := curlPath(t)
	srv := sensetest.Start(t, "jurisdictions: [MA, SN]\nhubs: [{name: tangier, jurisdiction: MA}]\n")
	url := base(srv.HTTPAddr()) + "/v1/pipelines/curl/events"
	run := func(args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(curl, append([]string{"--silent", "--show-error", "--max-time", "30",
			"--write-out", "\n%{http_version} %{http_code}"}, args...)...)
		cmd.Stdin = strings.NewReader(`{"key":"a","value":"one"}` + "\n" + `{"value":"two","jurisdiction":"SN"}` + "\n")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		s := strings.TrimSpace(string(out))
		i := strings.LastIndexByte(s, '\n') // --write-out's line
		return s[:max(i, 0)], s[i+1:]
	}
	offset := 0
	for _, mode := range []struct{ flag, version string }{{"--http2-prior-knowledge", "2"}, {"--http1.1", "1.1"}} {
		body, status := run(mode.flag, "--data-binary", "@-", "-H", "Content-Type: application/x-ndjson", "-H", "Sense-Jurisdiction: MA", url)
		if status != mode.version+" 207" {
			t.Fatalf("%s POST: %s\n%s", mode.flag, status, body)
		}
		var pr produceResponse
		if err := json.Unmarshal([]byte(body), &pr); err != nil {
			t.Fatalf("%s: %v\n%s", mode.flag, err, body)
		}
		if pr.Stored != 1 || *pr.Results[0].Offset != int64(offset) || pr.Results[1].Error != "NO_COMPLIANT_HUB" {
			t.Fatalf("%s POST: %s", mode.flag, body)
		}
		body, status = run(mode.flag, url+"?offset=0&max=10")
		if status != mode.version+" 200" {
			t.Fatalf("%s GET: %s\n%s", mode.flag, status, body)
		}
		var fr httpedge.FetchResponse
		if err := json.Unmarshal([]byte(body), &fr); err != nil {
			t.Fatalf("%s GET: %v\n%s", mode.flag, err, body)
		}
		offset++
		if len(fr.Records) != offset || *fr.Records[offset-1].Value != "one" || *fr.Records[offset-1].Key != "a" {
			t.Fatalf("%s GET: %s", mode.flag, body)
		}
	}
}
