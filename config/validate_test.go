package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/seglog"
)

// fieldErrors returns the FieldErrors joined in err.
func fieldErrors(t *testing.T, err error) []*FieldError {
	t.Helper()
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var out []*FieldError
	for _, e := range errs {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a *FieldError", e)
		}
		out = append(out, fe)
	}
	return out
}

// reg is a valid registry and hub list that cases build on.
const reg = "jurisdictions: [MA, SN, NG, KE]\ngroups: {ECOWAS: [SN, NG]}\n"
const hubs = "hubs: [{name: tangier, jurisdiction: MA}, {name: dakar, jurisdiction: SN}]\n"

func TestFileErrors(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		key   string // the FieldError's Key
		value string // its Value
		hint  string // part of what to do
	}{
		{"unknown key", reg + hubs + "pipelines: [{name: payments, partitons: 2}]\n",
			"pipelines[0].partitons", "", "did you mean partitions?"},
		{"unknown top-level key", reg + "hub: []\n", "hub", "", "did you mean hubs?"},
		{"unknown key far from any", "node: {colour: blue}\n", "node.colour", "", "the keys in node are id, data_dir"},
		{"repeated key", "node: {id: a}\nnode: {id: b}\n", "node", "", "is given twice (first on line 1)"},
		{"wrong shape", reg + "hubs: tangier\n", "hubs", "tangier", "expected a list"},
		{"list for a value", "node: {id: [a, b]}\n", "node.id", "", "is a list; expected a single value"},
		{"not YAML", "node: {id: n1\n", topLevel, "", "is not valid YAML"},
		{"two documents", "node: {id: n1}\n---\nnode: {id: n2}\n", topLevel, "", "more than one YAML document"},
		{"bad size", "router: {memory_limit: 12XB}\n", "router.memory_limit", "12XB", `unknown unit "XB"`},
		{"ambiguous size", "durability: {segment_bytes: 512MB}\n", "durability.segment_bytes", "512MB", "write MiB"},
		{"fractional size", "router: {max_event_bytes: 1.5MiB}\n", "router.max_event_bytes", "1.5MiB", "1536MiB"},
		{"bad duration", reg + hubs + "pipelines: [{name: p, retention: soon}]\n", "pipelines[0].retention", "soon", "such as 24h"},
		{"bad priority", reg + hubs + "pipelines: [{name: p, default_priority: urgent}]\n", "pipelines[0].default_priority", "urgent", "use low, medium or critical"},
		{"bad fsync", "durability: {fsync: sometimes}\n", "durability.fsync", "sometimes", "always, interval:<duration>"},
		{"bad fsync interval", "durability: {fsync: 'interval:-1s'}\n", "durability.fsync", "interval:-1s", "interval:10ms"},
		{"bad boolean", "router: {auto_create_pipelines: maybe}\n", "router.auto_create_pipelines", "maybe", "use true or false"},
		{"bad number", "router: {shed_low_at: half}\n", "router.shed_low_at", "half", "such as 0.5"},
		{"bad hub status", reg + "hubs: [{name: h, jurisdiction: MA, status: sideways}]\n", "hubs[0].status", "sideways", "up, draining or down"},
		{"bad log level", "log: {level: loud}\n", "log.level", "loud", "debug, info, warn or error"},
		{"bad log format", "log: {format: xml}\n", "log.format", "xml", "auto, json or text"},

		{"unknown jurisdiction", reg + "hubs: [{name: tangier, jurisdiction: MA}, {name: accra, jurisdiction: XX}]\n",
			"hubs[1].jurisdiction", "XX", "(registered: MA, SN, NG, KE); add it to jurisdictions or fix the hub"},
		{"hub in a group", reg + "hubs: [{name: west, jurisdiction: ECOWAS}]\n", "hubs[0].jurisdiction", "ECOWAS", "exactly one jurisdiction"},
		{"hub without jurisdiction", reg + "hubs: [{name: west}]\n", "hubs[0].jurisdiction", "", "is empty; give one registered code"},
		{"duplicate hub", reg + "hubs: [{name: tangier, jurisdiction: MA}, {name: tangier, jurisdiction: SN}]\n",
			"hubs[1].name", "tangier", "is also the name of hubs[0]"},
		{"bad hub name", reg + "hubs: [{name: Tangier, jurisdiction: MA}]\n", "hubs[0].name", "Tangier", "a-z, 0-9, '_', '-'"},
		{"empty hub name", reg + "hubs: [{jurisdiction: MA}]\n", "hubs[0].name", "", "is empty"},
		{"bad denied pipeline", reg + "hubs: [{name: h, jurisdiction: MA, policy: {deny_pipelines: [ok, 'a b']}}]\n",
			"hubs[0].policy.deny_pipelines[1]", "a b", "not a valid pipeline name"},
		{"group with unknown member", "jurisdictions: [MA, SN]\ngroups: {ECOWAS: [SN, GH]}\n",
			"groups.ECOWAS[1]", "GH", "(registered: MA, SN); add it to jurisdictions or remove it from the group"},
		{"empty group", "jurisdictions: [MA]\ngroups: {EMPTY: []}\n", "groups.EMPTY", "", "has no members"},
		{"group named like a code", "jurisdictions: [MA, SN]\ngroups: {sn: [MA]}\n", "groups.sn", "", "rename the group"},
		{"groups equal but for case", "jurisdictions: [MA, SN]\ngroups: {West: [SN], WEST: [MA]}\n", "groups.West", "", "group names ignore case"},
		{"bad code", "jurisdictions: [MA, ma]\n", "jurisdictions[1]", "ma", "two upper-case letters"},
		{"duplicate code", "jurisdictions: [MA, SN, MA]\n", "jurisdictions[2]", "MA", "is also jurisdictions[0]"},
		{"bad pipeline name", reg + hubs + "pipelines: [{name: 'pay ments'}]\n", "pipelines[0].name", "pay ments", "a-z, A-Z, 0-9"},
		{"duplicate pipeline", reg + hubs + "pipelines: [{name: payments}, {name: Payments}]\n", "pipelines[1].name", "Payments", "already declared as pipelines[0]"},
		{"too many partitions", reg + hubs + "pipelines: [{name: p, partitions: 2000}]\n", "pipelines[0].partitions", "2000", "use 1 to 1024"},
		{"negative partitions", reg + hubs + "pipelines: [{name: p, partitions: -1}]\n", "pipelines[0].partitions", "-1", "use 1 to 1024"},
		{"unknown default jurisdiction", reg + hubs + "pipelines: [{name: p, default_jurisdiction: 'MA,QQ'}]\n",
			"pipelines[0].default_jurisdiction", "MA,QQ", "group (ECOWAS) or *"},
		{"bad listener", "listeners: {native: localhost}\n", "listeners.native", "localhost", "127.0.0.1:7070"},
		{"bad port", "listeners: {http: '127.0.0.1:http'}\n", "listeners.http", "127.0.0.1:http", "0 (any free port) to 65535"},
		{"port conflict", "listeners: {native: '127.0.0.1:9000', kafka: ':9000'}\n", "listeners.kafka", ":9000", "uses the TCP port of listeners.native"},
		{"bad advertised address", "listeners: {kafka_advertised: ':9092'}\n", "listeners.kafka_advertised", ":9092", "give a host"},
		{"group commit interval", "durability: {group_commit_interval: 20ms}\n", "durability.group_commit_interval", "20ms", "0 (fdatasyncs back to back) to 10ms"},
		{"segment too small", "durability: {segment_bytes: 1KiB}\n", "durability.segment_bytes", "1KiB", "use 4KiB to 1GiB"},
		{"memory too small", "router: {memory_limit: 1000}\n", "router.memory_limit", "1000", "minimum of 1MiB"},
		{"event larger than memory", "router: {memory_limit: 2MiB, max_event_bytes: 4MiB}\n", "router.max_event_bytes", "4MiB", "larger than router.memory_limit (2MiB)"},
		{"shed fraction", "router: {shed_low_at: 1.5}\n", "router.shed_low_at", "1.5", "above 0 and at most 1"},
		{"shed order", "router: {shed_low_at: 0.9, shed_medium_at: 0.7}\n", "router.shed_medium_at", "0.7", "below router.shed_low_at (0.9)"},
		{"target delay", "router: {target_delay: 2m}\n", "router.target_delay", "2m0s", "out of range"},
		{"delay interval", "router: {delay_interval: 2h}\n", "router.delay_interval", "2h0m0s", "out of range"},
		{"too few open files", "storage: {max_open_files: 3}\n", "storage.max_open_files", "3", "0 (half of ulimit -n, at most 4096) or at least 16"},
		{"too much preallocation", "storage: {preallocate_bytes: 1GiB}\n", "storage.preallocate_bytes", "1GiB", "0 (off) to 256MiB"},
		{"default partitions", "router: {default_partitions: 2000}\n", "router.default_partitions", "2000", "0 (one partition per hub and lane) or 1 to 1024"},
		{"bad webhook", "alerts: {webhook: 'ftp://example.com/x'}\n", "alerts.webhook", "ftp://example.com/x", "http or https URL"},
		{"kafka request too large", "kafka: {max_request_bytes: 4GiB}\n", "kafka.max_request_bytes", "4GiB", "32-bit"},
		{"kafka transaction version", "kafka: {transaction_version: 3}\n", "kafka.transaction_version", "3", "use 1 (before KIP-890)"},
		{"transactional id expiration too short", "kafka: {transactional_id_expiration: 10s}\n", "kafka.transactional_id_expiration", "10s", "at least 1m"},
		{"http body too large", "http: {max_body_bytes: 2GiB}\n", "http.max_body_bytes", "2GiB", "from 1 byte to 1GiB"},
		{"http too many events", "http: {max_events_per_request: -3}\n", "http.max_events_per_request", "-3", "use 1 to 1000000"},
		{"tls key without cert", "tls: {key_file: /k.pem}\n", "tls.cert_file", "", "give the certificate too, or neither"},
		{"tls cert without key", "tls: {cert_file: /c.pem}\n", "tls.key_file", "", "give the certificate's private key too, or neither"},
		{"bad node id", "node: {id: 'Node 1'}\n", "node.id", "Node 1", "a-z, 0-9"},
		{"peer written as an address", "cluster: {peers: ['n2:7100']}\n" + reg + hubs, "cluster.peers[0]", "n2:7100", "such as {id: n2, addr: 10.0.0.2:7100}"},
		{"cluster without hubs", "cluster: {peers: [{id: n1, addr: 'n1:7100'}]}\n", "hubs", "", "declare at least one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("sense.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			errs := fieldErrors(t, err)
			if len(errs) != 1 {
				t.Errorf("got %d errors, want 1:\n%v", len(errs), err)
			}
			fe := errs[0]
			if fe.Key != tt.key || fe.Value != tt.value {
				t.Errorf("error on key %q value %q, want key %q value %q: %v", fe.Key, fe.Value, tt.key, tt.value, fe)
			}
			msg := fe.Error()
			prefix := "config: " + tt.key
			if tt.value != "" {
				prefix += ` "` + tt.value + `"`
			}
			if !strings.HasPrefix(msg, prefix+" ") {
				t.Errorf("message %q does not start with %q", msg, prefix)
			}
			if !strings.Contains(msg, tt.hint) {
				t.Errorf("message %q lacks the hint %q", msg, tt.hint)
			}
			if tt.key != "hubs" && !strings.HasSuffix(msg, "(sense.yaml)") && !strings.Contains(msg, "(sense.yaml line ") {
				t.Errorf("message %q does not say where the value came from", msg)
			}
		})
	}
}

func TestAllErrorsAtOnce(t *testing.T) {
	const bad = `
node: {id: N1}
jurisdictions: [MA, SN]
hubs:
  - {name: tangier, jurisdiction: XX}
  - {name: tangier, jurisdiction: SN}
pipelines: [{name: p, partitons: 2, retention: soon}]
router: {memory_limit: 12XB}
`
	_, err := Parse("sense.yaml", []byte(bad))
	var keys []string
	for _, fe := range fieldErrors(t, err) {
		keys = append(keys, fe.Key)
	}
	want := []string{"pipelines[0].partitons", "pipelines[0].retention", "router.memory_limit", "node.id", "hubs[0].jurisdiction", "hubs[1].name"}
	if strings.Join(keys, " ") != strings.Join(want, " ") {
		t.Errorf("errors on %v\nwant %v\n%v", keys, want, err)
	}
	// A rejected value is not reported a second time by Validate.
	if strings.Count(err.Error(), "memory_limit") != 1 {
		t.Errorf("memory_limit reported twice:\n%v", err)
	}
}

// TestValidateGoValues covers values only Go code can produce.
func TestValidateGoValues(t *testing.T) {
	tests := []struct {
		name   string
		c      Config
		key    string
		value  string
		target error
	}{
		{"priority", Config{Pipelines: []Pipeline{{Name: "p", DefaultPriority: 7}}}, "pipelines[0].default_priority", "priority(7)", nil},
		{"hub status", Config{Hubs: []Hub{{Name: "h", Jurisdiction: "*", Status: 9}}}, "hubs[0].status", "status(9)", nil},
		{"log format", Config{Log: Log{Format: 5}}, "log.format", "format(5)", nil},
		{"fsync mode", Config{Durability: Durability{Fsync: seglog.Durability{Mode: 9}}}, "durability.fsync", "mode 9", nil},
		{"fsync interval", Config{Durability: Durability{Fsync: seglog.Durability{Mode: seglog.SyncInterval}}}, "durability.fsync", "interval:0s", nil},
		{"negative retention", Config{Pipelines: []Pipeline{{Name: "p", Retention: -1}}}, "pipelines[0].retention", "-1ns", nil},
		{"negative retention bytes", Config{Pipelines: []Pipeline{{Name: "p", RetentionBytes: -1}}}, "pipelines[0].retention_bytes", "-1", nil},
		{"negative event size", Config{Router: Router{MaxEventBytes: -1}}, "router.max_event_bytes", "-1", nil},
		{"pipeline name wraps event's error", Config{Pipelines: []Pipeline{{Name: ".."}}}, "pipelines[0].name", "..", event.ErrInvalidPipeline},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			errs := fieldErrors(t, err)
			if len(errs) != 1 || errs[0].Key != tt.key || errs[0].Value != tt.value {
				t.Fatalf("got %v; want one error on %s %q", err, tt.key, tt.value)
			}
			if tt.target != nil && !errors.Is(err, tt.target) {
				t.Errorf("errors.Is(%v, %v) is false", err, tt.target)
			}
		})
	}
}
