package processor_test

import (
	"os"
	"strings"
	"testing"

	"github.com/sensehq/sense/config"
)

// TestDocsExamplesParse: every YAML example of docs/processors.md is a
// valid processors: list.
func TestDocsExamplesParse(t *testing.T) {
	doc, err := os.ReadFile("../docs/processors.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(doc), "```yaml\n")[1:]
	if len(blocks) == 0 {
		t.Fatal("docs/processors.md has no YAML example")
	}
	for _, b := range blocks {
		y, _, _ := strings.Cut(b, "```")
		ps, err := config.ParseProcessors("docs/processors.md", []byte(y))
		if err != nil || len(ps) == 0 {
			t.Errorf("example does not parse (%d processors): %v\n%s", len(ps), err, y)
		}
	}
}
