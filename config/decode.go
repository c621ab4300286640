package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/seglog"
)

// EnvPrefix starts the name of every environment variable Load reads.
const EnvPrefix = "SENSE_"

// Environment variables with a meaning of their own; every other setting's
// variable is EnvPrefix followed by its key, upper-cased, with '.' and '_'
// both written as '_' (router.memory_limit: SENSE_ROUTER_MEMORY_LIMIT).
const (
	EnvConfig = "SENSE_CONFIG" // path of the config file, like --config
	EnvData   = "SENSE_DATA"   // node.data_dir, like --data
)

// topLevel is the key of a problem with the document as a whole.
const topLevel = "(top level)"

// Load builds the configuration of a process from, in increasing order of
// precedence, the YAML config file, the environment and the flags, then
// validates it.
//
// The file is the one named by the --config flag, else by SENSE_CONFIG; with
// neither, there is no file and every setting not given by the environment
// or a flag takes its default. environ is the environment as os.Environ
// returns it; variables that start with SENSE_ followed by a section name
// (SENSE_ROUTER_..., SENSE_NODE_...) must be known settings, while other
// SENSE_ variables are left to other readers. Empty variables are ignored.
// fs holds the flags RegisterFlags added; only flags set on the command line
// apply. fs may be nil.
//
// Every problem is reported, each as a *FieldError, joined with errors.Join.
func Load(fs *pflag.FlagSet, environ []string) (*Config, error) {
	env := parseEnviron(environ)
	path, from := env[EnvConfig], "env "+EnvConfig
	if f := changedFlag(fs, "config"); f != nil {
		path, from = f.Value.String(), "flag --config"
	}
	c := new(Config)
	d := newDecoder()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: read the config file given by %s: %w", from, err)
		}
		d.decodeYAML(c, path, data)
	}
	d.applyEnv(c, env)
	d.applyFlags(c, fs)
	return d.finish(c)
}

// Parse decodes and validates a YAML config file, without environment or
// flags. name, which may be empty, is the file's name for error messages.
// Unknown and repeated keys are errors.
func Parse(name string, data []byte) (*Config, error) {
	c := new(Config)
	d := newDecoder()
	d.decodeYAML(c, name, data)
	return d.finish(c)
}

// flagKeys are the settings with a flag. Every flag takes the setting's
// config-file text.
var flagKeys = []struct{ name, key, usage string }{
	{"data", "node.data_dir", "directory of the node's data (default ./data; env SENSE_DATA)"},
	{"node-id", "node.id", "id of this node (default n1; env SENSE_NODE_ID)"},
	{"native-addr", "listeners.native", "native protocol listen address, host:port or off (default 127.0.0.1:7070; env SENSE_LISTENERS_NATIVE)"},
	{"http-addr", "listeners.http", "HTTP listen address, host:port or off (default 127.0.0.1:8080; env SENSE_LISTENERS_HTTP)"},
	{"kafka-addr", "listeners.kafka", "Kafka protocol listen address, host:port or off (default 127.0.0.1:9092; env SENSE_LISTENERS_KAFKA)"},
	{"quic-addr", "listeners.quic", "QUIC (UDP) listen address, host:port or off (default 127.0.0.1:7071; env SENSE_LISTENERS_QUIC)"},
	{"fsync", "durability.fsync", "fsync policy: always, interval:<duration> or never (default always; env SENSE_DURABILITY_FSYNC)"},
	{"log-level", "log.level", "log level: debug, info, warn or error (default info; env SENSE_LOG_LEVEL)"},
	{"log-format", "log.format", "log format: auto, json or text (default auto: json unless on a terminal; env SENSE_LOG_FORMAT)"},
}

// RegisterFlags adds to fs the flags Load reads: --config and one flag per
// common setting (--data, --node-id, --native-addr, --http-addr,
// --kafka-addr, --quic-addr, --fsync, --log-level, --log-format). Their
// defaults are empty, so that an unset flag leaves the file's or the
// environment's value alone.
func RegisterFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "path of the YAML config file (env SENSE_CONFIG; default none: built-in defaults)")
	for _, f := range flagKeys {
		fs.String(f.name, "", f.usage)
	}
}

func changedFlag(fs *pflag.FlagSet, name string) *pflag.Flag {
	if fs == nil {
		return nil
	}
	if f := fs.Lookup(name); f != nil && f.Changed {
		return f
	}
	return nil
}

// parseEnviron turns "NAME=value" entries into a map; a later entry wins.
func parseEnviron(environ []string) map[string]string {
	env := make(map[string]string)
	for _, kv := range environ {
		if name, value, ok := strings.Cut(kv, "="); ok {
			env[name] = value
		}
	}
	return env
}

// decoder applies the layers of a configuration to a Config and collects
// every problem.
type decoder struct {
	sources map[string]string // key -> where its value came from
	failed  map[string]bool   // keys whose value was rejected
	errs    []error
}

func newDecoder() *decoder {
	return &decoder{sources: make(map[string]string), failed: make(map[string]bool)}
}

func (d *decoder) fail(key, value, source string, err error) {
	d.errs = append(d.errs, &FieldError{Key: key, Value: value, Source: source, Err: err})
	d.failed[key] = true
}

// finish validates c and returns it, or every problem found. A Validate
// complaint about a key whose value was already rejected while decoding is
// left out: it would only describe the default that took its place.
func (d *decoder) finish(c *Config) (*Config, error) {
	c.sources = d.sources
	errs := d.errs
	for _, err := range c.check() {
		var fe *FieldError
		if errors.As(err, &fe) && d.alreadyFailed(fe.Key) {
			continue
		}
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func (d *decoder) alreadyFailed(key string) bool {
	for f := range d.failed {
		if key == f || strings.HasPrefix(key, f+".") || strings.HasPrefix(key, f+"[") {
			return true
		}
	}
	return false
}

// setLeaf parses text into the leaf v. An empty text leaves a non-string v
// unset, so that "" means "the default" for every kind of value.
func (d *decoder) setLeaf(v reflect.Value, key, text, source string, c codec) bool {
	if text == "" && v.Kind() != reflect.String {
		return false
	}
	x, err := c.parse(text)
	if err != nil {
		d.fail(key, text, source, err)
		return false
	}
	v.Set(x)
	d.sources[key] = source
	return true
}

// setText sets the setting at key, a path of struct fields only, from text
// given by the environment or a flag. A list (see textLists) is given as
// comma-separated text and replaces the list of the file.
func (d *decoder) setText(c *Config, key, text, source string) {
	v := reflect.ValueOf(c).Elem()
	for _, part := range strings.Split(key, ".") {
		v = v.Field(fieldsOf(v.Type()).index[part])
	}
	t := v.Type()
	if cd, ok := codecs[t]; ok {
		d.setLeaf(v, key, text, source, cd)
		return
	}
	if parse, ok := textLists[t]; ok {
		d.setList(v, key, text, source, parse)
		return
	}
	if t.Kind() != reflect.Pointer {
		panic("config: cannot set " + key + " from text")
	}
	p := reflect.New(t.Elem())
	if d.setLeaf(p.Elem(), key, text, source, codecs[t.Elem()]) {
		v.Set(p)
	}
}

// textLists are the lists a variable or a flag can set, as comma-separated
// entries; each function parses one entry, already trimmed of spaces.
var textLists = map[reflect.Type]func(s string) (reflect.Value, error){
	reflect.TypeFor[[]string](): func(s string) (reflect.Value, error) { return reflect.ValueOf(s), nil },
	reflect.TypeFor[[]Peer](): func(s string) (reflect.Value, error) {
		p, err := parsePeer(s)
		return reflect.ValueOf(p), err
	},
}

// parsePeer reads a peer written as id=host:port, the form of each entry of
// SENSE_CLUSTER_PEERS. It checks the form only; Validate checks the id and
// the address.
func parsePeer(s string) (Peer, error) {
	id, addr, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(id) == "" || strings.TrimSpace(addr) == "" {
		return Peer{}, hint("is not a peer; write each peer as id=host:port, such as n1=10.0.0.1:7100,n2=10.0.0.2:7100")
	}
	return Peer{ID: strings.TrimSpace(id), Addr: strings.TrimSpace(addr)}, nil
}

// setList sets the list v from comma-separated text. An entry that does not
// parse is reported and left as the zero value, so that the list keeps its
// length (a list of peers still leaves dev mode) and Validate's complaints
// about the entry are dropped as already reported.
func (d *decoder) setList(v reflect.Value, key, text, source string, parse func(string) (reflect.Value, error)) {
	for k := range d.sources {
		if strings.HasPrefix(k, key+"[") {
			delete(d.sources, k)
		}
	}
	d.sources[key] = source
	parts := strings.Split(text, ",")
	list := reflect.MakeSlice(v.Type(), len(parts), len(parts))
	var fieldNames []string
	if et := v.Type().Elem(); et.Kind() == reflect.Struct {
		fieldNames = fieldsOf(et).names
	}
	for i, part := range parts {
		part = strings.TrimSpace(part)
		k := fmt.Sprintf("%s[%d]", key, i)
		d.sources[k] = source
		for _, name := range fieldNames {
			d.sources[k+"."+name] = source
		}
		x, err := parse(part)
		if err != nil {
			d.fail(k, part, source, err)
			continue
		}
		list.Index(i).Set(x)
	}
	v.Set(list)
}

// applyEnv applies the SENSE_ variables of env to c.
func (d *decoder) applyEnv(c *Config, env map[string]string) {
	if a, b := env[EnvData], env["SENSE_NODE_DATA_DIR"]; a != "" && b != "" && a != b {
		d.fail("node.data_dir", a, "env "+EnvData,
			hint(fmt.Sprintf("conflicts with SENSE_NODE_DATA_DIR=%q; unset one of them", b)))
	}
	for _, name := range sortedKeys(env) {
		if !strings.HasPrefix(name, EnvPrefix) || name == EnvConfig {
			continue
		}
		key, ok := envKeys[name]
		if name == EnvData {
			key, ok = "node.data_dir", true
		}
		if !ok {
			d.unknownEnv(name)
			continue
		}
		if value := env[name]; value != "" {
			d.setText(c, key, value, "env "+name)
		}
	}
}

// unknownEnv reports a SENSE_ variable that names a section but no setting.
// Variables that do not start with a section name are not ours to judge.
func (d *decoder) unknownEnv(name string) {
	rest := strings.TrimPrefix(name, EnvPrefix)
	for _, section := range fieldsOf(reflect.TypeFor[Config]()).names {
		s := strings.ToUpper(section)
		if rest != s && !strings.HasPrefix(rest, s+"_") {
			continue
		}
		var err error
		if envFileOnly[section] {
			err = hint(fmt.Sprintf("is not read: %s can only be set in the config file", section))
		} else if best := suggest(name, envNames); best != "" {
			err = hint(fmt.Sprintf("is not a known setting; did you mean %s? Fix or unset it", best))
		} else {
			err = hint(fmt.Sprintf("is not a known setting (%s... variables: %s); fix or unset it",
				EnvPrefix+s, strings.Join(envNamesWithPrefix(EnvPrefix+s), ", ")))
		}
		d.fail(name, "", "", err)
		return
	}
}

// applyFlags applies the flags of fs that were set on the command line.
func (d *decoder) applyFlags(c *Config, fs *pflag.FlagSet) {
	for _, f := range flagKeys {
		if fl := changedFlag(fs, f.name); fl != nil {
			d.setText(c, f.key, fl.Value.String(), "flag --"+f.name)
		}
	}
}

// envKeys maps each environment variable to the key it sets; envNames lists
// the variables in the order of the Config struct; envFileOnly holds the
// top-level keys that only the file can set (lists of mappings, maps).
var envKeys, envNames, envFileOnly = buildEnv()

func buildEnv() (map[string]string, []string, map[string]bool) {
	keys := make(map[string]string)
	var names []string
	fileOnly := make(map[string]bool)
	var walk func(t reflect.Type, prefix string, top bool)
	walk = func(t reflect.Type, prefix string, top bool) {
		fs := fieldsOf(t)
		for i, name := range fs.names {
			ft := t.Field(fs.order[i]).Type
			key := name
			if prefix != "" {
				key = prefix + "." + name
			}
			switch {
			case isLeaf(ft) || textLists[ft] != nil:
				env := EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
				keys[env] = key
				names = append(names, env)
			case ft.Kind() == reflect.Struct:
				walk(ft, key, false)
			case top:
				fileOnly[name] = true
			}
		}
	}
	walk(reflect.TypeFor[Config](), "", true)
	return keys, names, fileOnly
}

func envNamesWithPrefix(prefix string) []string {
	var out []string
	for _, n := range envNames {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

// fields describes the YAML keys of a struct type.
type fields struct {
	names []string       // YAML keys in field order
	order []int          // field index of names[i]
	index map[string]int // YAML key -> field index
}

func fieldsOf(t reflect.Type) fields {
	fs := fields{index: make(map[string]int)}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			panic("config: field " + t.Name() + "." + f.Name + " has no yaml key")
		}
		fs.names = append(fs.names, name)
		fs.order = append(fs.order, i)
		fs.index[name] = i
	}
	return fs
}

// codec reads and writes one type of single value.
type codec struct {
	parse  func(s string) (reflect.Value, error) // errors are phrased to follow a key and value
	format func(v reflect.Value) string
	tag    string // YAML tag of the written value
}

func isLeaf(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	_, ok := codecs[t]
	return ok
}

var codecs = map[reflect.Type]codec{
	reflect.TypeFor[string](): {
		parse:  func(s string) (reflect.Value, error) { return reflect.ValueOf(s), nil },
		format: reflect.Value.String,
		tag:    "!!str",
	},
	reflect.TypeFor[bool](): {
		parse: func(s string) (reflect.Value, error) {
			b, err := strconv.ParseBool(strings.TrimSpace(s))
			if err != nil {
				return reflect.Value{}, hint("is not a boolean; use true or false")
			}
			return reflect.ValueOf(b), nil
		},
		format: func(v reflect.Value) string { return strconv.FormatBool(v.Bool()) },
		tag:    "!!bool",
	},
	reflect.TypeFor[int](): {
		parse: func(s string) (reflect.Value, error) {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				return reflect.Value{}, hint("is not a whole number")
			}
			return reflect.ValueOf(n), nil
		},
		format: func(v reflect.Value) string { return strconv.FormatInt(v.Int(), 10) },
		tag:    "!!int",
	},
	reflect.TypeFor[float64](): {
		parse: func(s string) (reflect.Value, error) {
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				return reflect.Value{}, hint("is not a number; write a decimal such as 0.5")
			}
			return reflect.ValueOf(f), nil
		},
		format: func(v reflect.Value) string { return formatFloat(v.Float()) },
		tag:    "!!float",
	},
	reflect.TypeFor[Size](): {
		parse: func(s string) (reflect.Value, error) {
			n, err := parseSize(s)
			return reflect.ValueOf(n), err
		},
		format: func(v reflect.Value) string { return Size(v.Int()).String() },
		tag:    "", // plain: "0", "1d", "256MiB"
	},
	reflect.TypeFor[Duration](): {
		parse: func(s string) (reflect.Value, error) {
			d, err := parseDuration(s)
			return reflect.ValueOf(d), err
		},
		format: func(v reflect.Value) string { return Duration(v.Int()).String() },
		tag:    "", // plain: "0", "1d", "256MiB"
	},
	reflect.TypeFor[event.Priority](): {
		parse: func(s string) (reflect.Value, error) {
			p, err := event.ParsePriority(strings.TrimSpace(s))
			if err != nil {
				return reflect.Value{}, hintWrap("is not a priority class; use low, medium or critical", err)
			}
			return reflect.ValueOf(p), nil
		},
		format: func(v reflect.Value) string { return event.Priority(v.Uint()).String() },
		tag:    "!!str",
	},
	reflect.TypeFor[slog.Level](): {
		parse: func(s string) (reflect.Value, error) {
			var l slog.Level
			if err := l.UnmarshalText([]byte(strings.TrimSpace(s))); err != nil {
				return reflect.Value{}, hintWrap("is not a log level; use debug, info, warn or error", err)
			}
			return reflect.ValueOf(l), nil
		},
		format: func(v reflect.Value) string { return strings.ToLower(slog.Level(v.Int()).String()) },
		tag:    "!!str",
	},
	reflect.TypeFor[seglog.Durability](): {
		parse: func(s string) (reflect.Value, error) {
			d, err := seglog.ParseDurability(strings.TrimSpace(s))
			if err != nil {
				return reflect.Value{}, hintWrap("is not an fsync policy; use always, interval:<duration> such as interval:10ms, or never", err)
			}
			return reflect.ValueOf(d), nil
		},
		format: func(v reflect.Value) string { return v.Interface().(seglog.Durability).String() },
		tag:    "!!str",
	},
	reflect.TypeFor[HubStatus](): {
		parse: func(s string) (reflect.Value, error) {
			st, err := ParseHubStatus(strings.TrimSpace(s))
			if err != nil {
				return reflect.Value{}, hint("is not a hub status; use up, draining or down")
			}
			return reflect.ValueOf(st), nil
		},
		format: func(v reflect.Value) string { return HubStatus(v.Uint()).String() },
		tag:    "!!str",
	},
	reflect.TypeFor[ClientAuth](): {
		parse: func(s string) (reflect.Value, error) {
			a := ClientAuth(strings.TrimSpace(s))
			if !a.valid() {
				return reflect.Value{}, hint("is not a client authentication policy; use none, verify_if_given or require")
			}
			return reflect.ValueOf(a), nil
		},
		format: func(v reflect.Value) string { return v.String() },
		tag:    "!!str",
	},
	reflect.TypeFor[LogFormat](): {
		parse: func(s string) (reflect.Value, error) {
			f, err := ParseLogFormat(strings.TrimSpace(s))
			if err != nil {
				return reflect.Value{}, hint("is not a log format; use auto, json or text")
			}
			return reflect.ValueOf(f), nil
		},
		format: func(v reflect.Value) string { return LogFormat(v.Uint()).String() },
		tag:    "!!str",
	},
}

// decodeYAML decodes a YAML document into c. Unknown keys, repeated keys
// and values of the wrong shape are errors naming the key and the line.
func (d *decoder) decodeYAML(c *Config, name string, data []byte) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err != io.EOF {
			d.fail(topLevel, "", name, hintWrap("is not valid YAML: "+err.Error(), err))
		}
		return
	}
	var more yaml.Node
	if err := dec.Decode(&more); err != io.EOF {
		d.fail(topLevel, "", name, hint("holds more than one YAML document; keep one (remove the second ---)"))
		return
	}
	f := &fileDecoder{decoder: d, name: name, merging: make(map[*yaml.Node]bool), budget: maxNodes}
	f.value(&doc, reflect.ValueOf(c).Elem(), "")
}

// maxNodes bounds the nodes one file may decode to, counting every
// expansion of an alias or merge, so that a file of nested aliases (a
// "billion laughs") fails quickly instead of running for ever.
const maxNodes = 1 << 18

// fileDecoder walks a YAML node tree alongside the Config it fills.
type fileDecoder struct {
	*decoder
	name    string              // file name, may be empty
	merging map[*yaml.Node]bool // mappings being merged, to catch a mapping merged into itself
	budget  int                 // nodes left to decode
}

func (f *fileDecoder) where(n *yaml.Node) string {
	if f.name == "" {
		return fmt.Sprintf("line %d", n.Line)
	}
	return fmt.Sprintf("%s line %d", f.name, n.Line)
}

// failAt records a problem with key, found at node n.
func (f *fileDecoder) failAt(n *yaml.Node, key, value string, err error) {
	if key == "" {
		key = topLevel
	}
	f.fail(key, value, f.where(n), err)
}

// value decodes n into v, whose key is key ("" for the document).
func (f *fileDecoder) value(n *yaml.Node, v reflect.Value, key string) {
	n = resolve(n)
	if n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	if f.budget--; f.budget < 0 {
		if f.budget == -1 {
			f.failAt(n, key, "", hint(fmt.Sprintf("expands aliases to more than %d values; write the file without nested aliases", maxNodes)))
		}
		return
	}
	if key != "" {
		f.sources[key] = f.where(n)
	}
	t := v.Type()
	if c, ok := codecs[t]; ok {
		f.leaf(n, v, key, c)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		if f.leaf(n, p.Elem(), key, codecs[t.Elem()]) {
			v.Set(p)
		}
	case reflect.Struct:
		f.structure(n, v, key)
	case reflect.Map:
		f.mapping(n, v, key)
	case reflect.Slice:
		f.sequence(n, v, key)
	default:
		panic("config: cannot decode " + t.String())
	}
}

// resolve follows aliases and enters documents.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil {
		switch n.Kind {
		case yaml.DocumentNode:
			if len(n.Content) == 0 {
				return nil
			}
			n = n.Content[0]
		case yaml.AliasNode:
			n = n.Alias
		default:
			return n
		}
	}
	return nil
}

func (f *fileDecoder) leaf(n *yaml.Node, v reflect.Value, key string, c codec) bool {
	if n.Kind != yaml.ScalarNode {
		f.failAt(n, key, "", hint(fmt.Sprintf("is %s; expected a single value", describe(n))))
		return false
	}
	return f.setLeaf(v, key, n.Value, f.where(n), c)
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return "a single value"
}

func scalarText(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}

// mappingExamples show how to write a mapping that is easily mistaken for a
// single value.
var mappingExamples = map[reflect.Type]string{
	reflect.TypeFor[Peer](): ", such as {id: n2, addr: 10.0.0.2:7100}",
}

func (f *fileDecoder) structure(n *yaml.Node, v reflect.Value, key string) {
	fs := fieldsOf(v.Type())
	if n.Kind != yaml.MappingNode {
		f.failAt(n, key, scalarText(n), hint(fmt.Sprintf("is %s; expected a mapping with keys %s%s",
			describe(n), strings.Join(fs.names, ", "), mappingExamples[v.Type()])))
		return
	}
	f.eachPair(n, v, key, func(k, val *yaml.Node, child string) {
		i, ok := fs.index[k.Value]
		if !ok {
			f.unknownKey(k, key, child, fs.names)
			return
		}
		f.value(val, v.Field(i), child)
	})
}

func (f *fileDecoder) mapping(n *yaml.Node, v reflect.Value, key string) {
	t := v.Type()
	if n.Kind != yaml.MappingNode {
		f.failAt(n, key, scalarText(n), hint(fmt.Sprintf("is %s; expected a mapping of names to values", describe(n))))
		return
	}
	f.eachPair(n, v, key, func(k, val *yaml.Node, child string) {
		elem := reflect.New(t.Elem()).Elem()
		f.value(val, elem, child)
		if v.IsNil() {
			v.Set(reflect.MakeMap(t))
		}
		v.SetMapIndex(reflect.ValueOf(k.Value).Convert(t.Key()), elem)
	})
}

// eachPair calls fn for each key and value of mapping n, which fills v.
// Merged mappings ("<<: *base") are decoded into v first, so that the
// mapping's own keys win; a key given twice is an error.
func (f *fileDecoder) eachPair(n *yaml.Node, v reflect.Value, key string, fn func(k, val *yaml.Node, child string)) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			f.merge(k, n.Content[i+1], v, key)
		}
	}
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			f.failAt(k, key, "", hint(fmt.Sprintf("has a key that is %s; keys must be plain names", describe(k))))
			continue
		}
		child := k.Value
		if key != "" {
			child = key + "." + k.Value
		}
		if line, dup := seen[k.Value]; dup {
			f.failAt(k, child, "", hint(fmt.Sprintf("is given twice (first on line %d); keep one", line)))
			continue
		}
		seen[k.Value] = k.Line
		fn(k, val, child)
	}
}

func (f *fileDecoder) merge(k, val *yaml.Node, v reflect.Value, key string) {
	val = resolve(val)
	var from []*yaml.Node
	switch {
	case val == nil:
	case val.Kind == yaml.MappingNode:
		from = []*yaml.Node{val}
	case val.Kind == yaml.SequenceNode:
		// Earlier mappings win, so decode them last.
		for _, m := range slices.Backward(val.Content) {
			from = append(from, m)
		}
	}
	for _, m := range from {
		if m = resolve(m); m == nil || m.Kind != yaml.MappingNode {
			f.failAt(k, key, "", hint("merges something that is not a mapping; << takes a mapping or a list of them"))
			return
		}
	}
	for _, m := range from {
		if f.merging[m] {
			f.failAt(k, key, "", hint("merges a mapping into itself; remove the << or point it elsewhere"))
			return
		}
	}
	for _, m := range from {
		f.merging[m] = true
		f.value(m, v, key)
		delete(f.merging, m)
	}
}

func (f *fileDecoder) sequence(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.SequenceNode {
		f.failAt(n, key, scalarText(n), hint(fmt.Sprintf("is %s; expected a list", describe(n))))
		return
	}
	if len(n.Content) == 0 {
		v.SetZero() // an empty list is the same as none
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, e := range n.Content {
		f.value(e, s.Index(i), fmt.Sprintf("%s[%d]", key, i))
	}
	v.Set(s)
}

func (f *fileDecoder) unknownKey(k *yaml.Node, parent, child string, known []string) {
	if best := suggest(k.Value, known); best != "" {
		f.failAt(k, child, "", hint(fmt.Sprintf("is not a known key; did you mean %s?", best)))
		return
	}
	where := "at the top level"
	if parent != "" {
		where = "in " + parent
	}
	f.failAt(k, child, "", hint(fmt.Sprintf("is not a known key; the keys %s are %s", where, strings.Join(known, ", "))))
}

// suggest returns the candidate closest to name, if one is close enough to
// be a likely typo.
func suggest(name string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if strings.EqualFold(c, name) {
			return c
		}
		if d := editDistance(strings.ToLower(name), strings.ToLower(c)); d < bestDist && d < len(c)/2 {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
