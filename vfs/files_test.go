package vfs

import (
	"bytes"
	"path/filepath"
	"testing"
)

// The helpers behave alike on the OS and the in-memory file systems, and
// an atomic write survives a crash whole.
func TestFileHelpers(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   FS
		root string
	}{{"os", Default, t.TempDir()}, {"mem", NewMem(), "/data"}} {
		t.Run(tc.name, func(t *testing.T) {
			fs, root := tc.fs, tc.root
			if err := fs.MkdirAll(filepath.Join(root, "a", "b")); err != nil {
				t.Fatal(err)
			}
			name := filepath.Join(root, "a", "f")
			if err := WriteFileAtomic(fs, name, []byte("one")); err != nil {
				t.Fatal(err)
			}
			if err := WriteFileAtomic(fs, name, []byte("second")); err != nil {
				t.Fatal(err)
			}
			got, err := ReadFile(fs, name)
			if err != nil || !bytes.Equal(got, []byte("second")) {
				t.Fatalf("ReadFile = %q, %v", got, err)
			}
			if _, err := ReadFile(fs, filepath.Join(root, "missing")); !IsNotExist(err) {
				t.Fatalf("ReadFile of a missing file: %v", err)
			}
			f, err := fs.Create(filepath.Join(root, "a", "b", "g"))
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			if err := RemoveAll(fs, filepath.Join(root, "a")); err != nil {
				t.Fatal(err)
			}
			if names, _ := fs.List(root); len(names) != 0 {
				t.Fatalf("after RemoveAll the root holds %v", names)
			}
			if err := RemoveAll(fs, filepath.Join(root, "a")); err != nil {
				t.Fatalf("RemoveAll of a missing name: %v", err)
			}
		})
	}
	mem := NewMem()
	if err := mem.MkdirAll("/d"); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(mem, "/d/f", []byte("durable")); err != nil {
		t.Fatal(err)
	}
	mem.Crash(nil)
	if got, err := ReadFile(mem, "/d/f"); err != nil || string(got) != "durable" {
		t.Fatalf("after a crash: %q, %v", got, err)
	}
}
