package config

import (
	"bytes"
	"cmp"
	"fmt"
	"reflect"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Marshal writes c as a YAML config file that Parse reads back to the same
// Config. After Validate it shows every setting, defaults included, which is
// what `sense config print` needs; unset *bool fields are left out.
func (c *Config) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(encodeValue(reflect.ValueOf(c).Elem())); err != nil {
		return nil, fmt.Errorf("config: marshal: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("config: marshal: %w", err)
	}
	return buf.Bytes(), nil
}

// encodeValue builds the YAML node of v, or nil when v is an unset pointer.
func encodeValue(v reflect.Value) *yaml.Node {
	t := v.Type()
	if c, ok := codecs[t]; ok {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: c.tag, Value: c.format(v)}
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return encodeValue(v.Elem())
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode}
		fs := fieldsOf(t)
		for i, name := range fs.names {
			if val := encodeValue(v.Field(fs.order[i])); val != nil {
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}, val)
			}
		}
		return n
	case reflect.Map:
		n := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return cmp.Compare(a.String(), b.String()) })
		for _, k := range keys {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k.String()}, encodeValue(v.MapIndex(k)))
		}
		return n
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		if isLeaf(t.Elem()) {
			n.Style = yaml.FlowStyle
		}
		for i := 0; i < v.Len(); i++ {
			n.Content = append(n.Content, encodeValue(v.Index(i)))
		}
		return n
	}
	panic("config: cannot encode " + t.String())
}
