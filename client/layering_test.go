package client

import (
	"go/build"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// module is the import path of the Sense module.
const module = "github.com/sensehq/sense"

// forbidden are the packages, and their subpackages, the client must not
// link: the engine and the servers. The client speaks the protocols through
// their wire packages only; edge/native/wire and its subpackages are the
// exception under edge/native.
var forbidden = []string{
	module + "/node",
	module + "/seglog",
	module + "/router",
	module + "/server",
	module + "/edge/native",
	module + "/edge/quicedge",
	module + "/edge/httpedge",
	module + "/edge/kafka",
}

// allowed are subtrees of a forbidden package that the client may import.
var allowed = []string{module + "/edge/native/wire"}

func within(path, tree string) bool { return path == tree || strings.HasPrefix(path, tree+"/") }

func isForbidden(path string) bool {
	for _, a := range allowed {
		if within(path, a) {
			return false
		}
	}
	for _, f := range forbidden {
		if within(path, f) {
			return true
		}
	}
	return false
}

// moduleRoot is the directory of go.mod above the working directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// TestLayering: the client links neither the engine nor the servers. It
// walks the module's packages the client imports (test files aside) and
// reports the import chain to each forbidden one.
func TestLayering(t *testing.T) {
	root := moduleRoot(t)
	from := map[string]string{module + "/client": ""} // package -> its importer
	queue := []string{module + "/client"}
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		if isForbidden(path) {
			chain := []string{path}
			for p := from[path]; p != ""; p = from[p] {
				chain = append([]string{p}, chain...)
			}
			t.Errorf("client reaches %s: %s", path, strings.Join(chain, " -> "))
			continue // what lies behind it is reported through it
		}
		pkg, err := build.Default.Import(path, root, 0)
		if err != nil {
			t.Fatalf("import %s: %v", path, err)
		}
		for _, imp := range pkg.Imports {
			if _, seen := from[imp]; seen || !within(imp, module) {
				continue
			}
			from[imp] = path
			queue = append(queue, imp)
		}
	}
}
