package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/seglog"
)

// fullYAML sets every key, most to a value other than its default.
const fullYAML = `
node: {id: n2, data_dir: /var/lib/sense}
listeners: {native: 127.0.0.1:17070, http: "0.0.0.0:18080", kafka: ":19092", kafka_advertised: "broker1.example.com:19092", quic: off}
jurisdictions: [MA, SN, NG, KE]          # bit i = i-th entry
groups: {ECOWAS: [SN, NG], EAC: [KE]}
hubs:
  - {name: tangier, jurisdiction: MA, status: up, policy: {deny_pipelines: [ads]}}
  - {name: dakar,   jurisdiction: SN, status: draining}
  - {name: lab,     jurisdiction: "*", status: down}
pipelines:
  - {name: payments, partitions: 2, replication: 1, retention: 24h, retention_bytes: 0, default_priority: low, default_jurisdiction: "*"}
  - {name: health.records, partitions: 8, retention: 7d, retention_bytes: 10GiB, default_priority: critical, default_jurisdiction: "ECOWAS, MA"}
durability: {fsync: "interval:10ms", segment_bytes: 64MiB}
router: {memory_limit: 512MiB, auto_create_pipelines: false, max_event_bytes: 2MiB, shed_low_at: 0.6, shed_medium_at: 0.9}
alerts: {webhook: "https://alerts.example.com/sense"}
kafka: {auto_create_topics: false, max_request_bytes: 50MiB, group_initial_rebalance_delay: 0s}
http: {max_body_bytes: 4MiB, max_events_per_request: 500}
log: {format: json, level: debug}
cluster: {listen: "", advertise: "", peers: []}
`

func TestZeroConfigDefaults(t *testing.T) {
	c := Default()
	want := Config{
		Node: Node{ID: "n1", DataDir: "./data"},
		Listeners: Listeners{
			Native: "127.0.0.1:7070", HTTP: "127.0.0.1:8080",
			Kafka: "127.0.0.1:9092", QUIC: "127.0.0.1:7071",
		},
		Jurisdictions: []string{"ZZ"},
		Hubs:          []Hub{{Name: "local", Jurisdiction: "*", mask: 1}},
		Durability:    Durability{Fsync: seglog.Durability{Mode: seglog.SyncAlways}, SegmentBytes: 128 * MiB},
		Storage:       Storage{PreallocateBytes: ptr(DefaultPreallocateBytes)},
		Router: Router{
			MemoryLimit: 256 * MiB, AutoCreatePipelines: Bool(true), MaxEventBytes: 1 * MiB,
			ShedLowAt: 0.5, ShedMediumAt: 0.8, TargetDelay: DefaultTargetDelay, DelayInterval: DefaultDelayInterval,
		},
		Kafka: Kafka{AutoCreateTopics: Bool(true), MaxRequestBytes: 100 * MiB, GroupInitialRebalanceDelay: ptr(DefaultGroupInitialRebalanceDelay)},
		HTTP:  HTTP{MaxBodyBytes: 16 * MiB, MaxEventsPerRequest: 10000},
		TLS:   TLS{HandshakeTimeout: DefaultHandshakeTimeout},
	}
	want.registry = c.registry
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("Default() =\n%+v\nwant\n%+v", *c, want)
	}
	if !c.DevMode() {
		t.Error("zero config is not dev mode")
	}
	reg := c.Registry()
	if reg == nil || !reflect.DeepEqual(reg.Codes(), []string{"ZZ"}) {
		t.Fatalf("Registry() = %v, want one code ZZ", reg)
	}
	if c.Hubs[0].Mask() != reg.All() {
		t.Errorf("local hub mask = %#x, want every bit %#x", c.Hubs[0].Mask(), reg.All())
	}
	if got := c.Listeners.KafkaAdvertisedAddr(); got != "127.0.0.1:9092" {
		t.Errorf("KafkaAdvertisedAddr() = %q, want the Kafka listener", got)
	}

	// Load with nothing at all gives the same.
	l, err := Load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.sources = nil
	if !reflect.DeepEqual(l, c) {
		t.Errorf("Load(nil, nil) = %+v, want Default() %+v", l, c)
	}
	// So does an empty file.
	for _, doc := range []string{"", "# nothing\n", "---\n", "~\n", "{}\n"} {
		p, err := Parse("empty.yaml", []byte(doc))
		if err != nil {
			t.Fatalf("Parse(%q): %v", doc, err)
		}
		p.sources = nil
		if !reflect.DeepEqual(p, c) {
			t.Errorf("Parse(%q) = %+v, want Default()", doc, p)
		}
	}
}

func TestFullFile(t *testing.T) {
	c, err := Parse("sense.yaml", []byte(fullYAML))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Node: Node{ID: "n2", DataDir: "/var/lib/sense"},
		Listeners: Listeners{
			Native: "127.0.0.1:17070", HTTP: "0.0.0.0:18080", Kafka: ":19092",
			KafkaAdvertised: "broker1.example.com:19092", QUIC: ListenerOff,
		},
		Jurisdictions: []string{"MA", "SN", "NG", "KE"},
		Groups:        map[string][]string{"ECOWAS": {"SN", "NG"}, "EAC": {"KE"}},
		Hubs: []Hub{
			{Name: "tangier", Jurisdiction: "MA", Status: HubUp, Policy: HubPolicy{DenyPipelines: []string{"ads"}}, mask: 1},
			{Name: "dakar", Jurisdiction: "SN", Status: HubDraining, mask: 2},
			{Name: "lab", Jurisdiction: "*", Status: HubDown, mask: 15},
		},
		Pipelines: []Pipeline{
			{Name: "payments", Partitions: 2, Replication: 1, Retention: Duration(24 * time.Hour), DefaultPriority: event.Low,
				DefaultJurisdiction: "*", defaultMask: 15},
			{Name: "health.records", Partitions: 8, Retention: Duration(7 * 24 * time.Hour), RetentionBytes: 10 * GiB,
				DefaultPriority: event.Critical, DefaultJurisdiction: "ECOWAS, MA", defaultMask: 7},
		},
		Durability: Durability{Fsync: seglog.Durability{Mode: seglog.SyncInterval, Interval: 10 * time.Millisecond}, SegmentBytes: 64 * MiB},
		Storage:    Storage{PreallocateBytes: ptr(DefaultPreallocateBytes)},
		Router: Router{MemoryLimit: 512 * MiB, AutoCreatePipelines: Bool(false), MaxEventBytes: 2 * MiB,
			ShedLowAt: 0.6, ShedMediumAt: 0.9, TargetDelay: DefaultTargetDelay, DelayInterval: DefaultDelayInterval},
		Alerts: Alerts{Webhook: "https://alerts.example.com/sense"},
		Kafka:  Kafka{AutoCreateTopics: Bool(false), MaxRequestBytes: 50 * MiB, GroupInitialRebalanceDelay: ptr(Duration(0))},
		HTTP:   HTTP{MaxBodyBytes: 4 * MiB, MaxEventsPerRequest: 500},
		TLS:    TLS{HandshakeTimeout: DefaultHandshakeTimeout},
		Log:    Log{Format: LogJSON, Level: slog.LevelDebug},
	}
	got := *c
	got.registry, got.sources = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse(full) =\n%+v\nwant\n%+v", got, want)
	}
	reg := c.Registry()
	if m, ok := reg.Group("ecowas"); !ok || reg.Format(m) != "SN,NG" {
		t.Errorf("group ECOWAS = %q, %v; want SN,NG", reg.Format(m), ok)
	}
	if got := c.Listeners.KafkaAdvertisedAddr(); got != "broker1.example.com:19092" {
		t.Errorf("KafkaAdvertisedAddr() = %q", got)
	}
	if !c.Hubs[0].Policy.Denies("ads") || c.Hubs[0].Policy.Denies("payments") {
		t.Error("tangier's policy should deny ads and only ads")
	}
	if got := c.Source("hubs[1].status"); got != "sense.yaml line 8" {
		t.Errorf(`Source("hubs[1].status") = %q, want "sense.yaml line 8"`, got)
	}

	// Marshal writes a file that reads back to the same Config, and is
	// stable from then on.
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("", out)
	if err != nil {
		t.Fatalf("Parse(Marshal()): %v\n%s", err, out)
	}
	back.sources, c.sources = nil, nil
	if !reflect.DeepEqual(back, c) {
		t.Errorf("Parse(Marshal()) =\n%+v\nwant\n%+v\nYAML:\n%s", back, c, out)
	}
	again, err := back.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, out) {
		t.Errorf("Marshal is not stable:\n%s\nthen\n%s", out, again)
	}
	for _, want := range []string{"retention: 7d", "retention_bytes: 10GiB", "fsync: interval:10ms", "level: debug", "quic: off"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("Marshal output lacks %q:\n%s", want, out)
		}
	}
}

func TestMarshalZero(t *testing.T) {
	// An unvalidated Config marshals too; unset *bool fields are left out.
	out, err := new(Config).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "auto_create") {
		t.Errorf("unset *bool fields written:\n%s", out)
	}
	c, err := Parse("", out)
	if err != nil {
		t.Fatalf("Parse(Marshal(zero)): %v\n%s", err, out)
	}
	if !*c.Router.AutoCreatePipelines {
		t.Error("dev-mode default lost in a round trip")
	}
}

func TestDevMode(t *testing.T) {
	const hubs = "hubs: [{name: h1, jurisdiction: '*'}]\n"
	const peers = "cluster: {peers: [{id: n1, addr: 'n1.example.com:7100'}, {id: n2, addr: 'n2.example.com:7100'}]}\n"
	tests := []struct {
		name        string
		yaml        string
		dev         bool
		pipes, tops bool
	}{
		{"zero", "", true, true, true},
		{"dev, turned off", "router: {auto_create_pipelines: false}\nkafka: {auto_create_topics: false}\n", true, false, false},
		{"dev, one off", "kafka: {auto_create_topics: false}\n", true, true, false},
		{"cluster", peers + hubs, false, false, false},
		{"cluster, turned on", peers + hubs + "router: {auto_create_pipelines: true}\n", false, true, false},
		{"cluster, both on", peers + hubs + "router: {auto_create_pipelines: true}\nkafka: {auto_create_topics: true}\n", false, true, true},
		{"empty peers", "cluster: {peers: []}\n", true, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if c.DevMode() != tt.dev || *c.Router.AutoCreatePipelines != tt.pipes || *c.Kafka.AutoCreateTopics != tt.tops {
				t.Errorf("dev %v, auto_create_pipelines %v, auto_create_topics %v; want %v, %v, %v",
					c.DevMode(), *c.Router.AutoCreatePipelines, *c.Kafka.AutoCreateTopics, tt.dev, tt.pipes, tt.tops)
			}
		})
	}

	// The dev-mode hub exists only in dev mode.
	c, err := Parse("", []byte("hubs: []\n"))
	if err != nil || len(c.Hubs) != 1 || c.Hubs[0].Name != DefaultHubName {
		t.Errorf("dev mode without hubs: hubs %+v, err %v; want the local hub", c, err)
	}
	_, err = Parse("", []byte(peers))
	if err == nil || !strings.Contains(err.Error(), "config: hubs is empty") {
		t.Errorf("cluster mode without hubs: err %v; want hubs is empty", err)
	}

	// The environment can leave dev mode too.
	c, err = Load(nil, []string{"SENSE_CLUSTER_PEERS=n1=n1:7100, n2=n2:7100"})
	if errs := fieldErrors(t, err); len(errs) != 1 || errs[0].Key != "hubs" {
		t.Errorf("SENSE_CLUSTER_PEERS without hubs: %+v, %v; want only hubs is empty", c, err)
	}
}

func TestValidateIsIdempotent(t *testing.T) {
	c := &Config{Jurisdictions: []string{"MA", "SN"}, Hubs: []Hub{{Name: "rabat", Jurisdiction: "MA"}}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	first := *c
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first, *c) {
		t.Errorf("second Validate changed the config:\n%+v\n%+v", first, *c)
	}
	if c.Hubs[0].Mask() != jurisdiction.Mask(1) {
		t.Errorf("rabat mask = %#x, want 1", c.Hubs[0].Mask())
	}

	// A failed Validate leaves no registry behind.
	c.Hubs = append(c.Hubs, Hub{Name: "rabat", Jurisdiction: "MA"})
	if err := c.Validate(); err == nil {
		t.Fatal("duplicate hub accepted")
	}
	if c.Registry() != nil {
		t.Error("Registry() is set after a failed Validate")
	}
}

func TestLog(t *testing.T) {
	tests := []struct {
		format   LogFormat
		terminal bool
		want     LogFormat
	}{
		{LogAuto, true, LogText},
		{LogAuto, false, LogJSON},
		{LogJSON, true, LogJSON},
		{LogText, false, LogText},
	}
	for _, tt := range tests {
		if got := (Log{Format: tt.format}).EffectiveFormat(tt.terminal); got != tt.want {
			t.Errorf("%v on terminal=%v: %v, want %v", tt.format, tt.terminal, got, tt.want)
		}
	}
	var buf bytes.Buffer
	l := slog.New(Log{Level: slog.LevelWarn}.Handler(&buf, false))
	l.Info("hidden")
	l.Warn("shown", "k", 1)
	if got := buf.String(); strings.Contains(got, "hidden") || !strings.HasPrefix(got, `{"time":`) || !strings.Contains(got, `"msg":"shown"`) {
		t.Errorf("JSON handler at warn wrote %q", got)
	}
}

func TestAnchorsAndMerges(t *testing.T) {
	const doc = `
jurisdictions: [MA, SN]
hubs:
  - &eu {name: tangier, jurisdiction: MA, policy: {deny_pipelines: [ads, tracking]}}
  - {<<: *eu, name: rabat}
  - {<<: [{name: ignored, jurisdiction: SN}, *eu], name: dakar}
pipelines:
  - &p {name: payments, partitions: 4, retention: 7d}
  - {<<: *p, name: refunds, partitions: 2}
`
	c, err := Parse("", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	h := c.Hubs
	if h[1].Name != "rabat" || h[1].Jurisdiction != "MA" || len(h[1].Policy.DenyPipelines) != 2 {
		t.Errorf("hub merged from *eu = %+v", h[1])
	}
	// Earlier mappings of a merge list win over later ones.
	if h[2].Name != "dakar" || h[2].Jurisdiction != "SN" {
		t.Errorf("hub merged from a list = %+v", h[2])
	}
	p := c.Pipelines[1]
	if p.Name != "refunds" || p.Partitions != 2 || p.Retention != Duration(7*24*time.Hour) {
		t.Errorf("pipeline merged from *p = %+v", p)
	}
}

func TestAliasAbuse(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"merge into itself", "node: &n {id: a, <<: *n}\n", "config: node merges a mapping into itself"},
		{"merge cycle", "hubs:\n  - &a {name: a, jurisdiction: '*'}\n  - &b {<<: *a, name: b}\n", ""},
	}
	// A billion laughs made of merges: each level merges the previous one
	// ten times.
	var b strings.Builder
	b.WriteString("pipelines:\n  - &l0 {name: p0}\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "  - &l%d {<<: [", i)
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*l%d", i-1)
		}
		fmt.Fprintf(&b, "], name: p%d}\n", i)
	}
	tests = append(tests, struct{ name, doc, want string }{"billion laughs", b.String(), "expands aliases to more than"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("", []byte(tt.doc))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse: %v; want an error with %q", err, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
