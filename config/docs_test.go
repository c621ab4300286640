package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestDocsListEverySetting keeps docs/configuration.md complete: every key,
// environment variable and flag must appear in it, in backquotes.
func TestDocsListEverySetting(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		fs := fieldsOf(t)
		for i, name := range fs.names {
			key := prefix + name
			ft := t.Field(fs.order[i]).Type
			switch {
			case isLeaf(ft) || ft == reflect.TypeFor[[]string]():
				want = append(want, key)
			case ft.Kind() == reflect.Struct:
				walk(ft, key+".")
			case ft.Kind() == reflect.Slice:
				if textLists[ft] != nil { // a list of mappings a variable can set
					want = append(want, key)
				}
				walk(ft.Elem(), key+"[].")
			case ft.Kind() == reflect.Map:
				want = append(want, key+".<NAME>")
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	want = append(want, envNames...)
	want = append(want, EnvData, EnvConfig, "--config")
	for _, f := range flagKeys {
		want = append(want, "--"+f.name)
	}
	for _, w := range want {
		if !strings.Contains(string(doc), "`"+w+"`") {
			t.Errorf("docs/configuration.md does not mention `%s`", w)
		}
	}
}

// TestDocsExamplesParse checks that every YAML example in
// docs/configuration.md is a valid config file.
func TestDocsExamplesParse(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(doc), "```yaml\n")[1:]
	if len(blocks) == 0 {
		t.Fatal("no YAML examples found")
	}
	for i, b := range blocks {
		text, _, _ := strings.Cut(b, "```")
		if _, err := Parse("", []byte(text)); err != nil {
			t.Errorf("example %d does not parse: %v\n%s", i, err, text)
		}
	}
}
