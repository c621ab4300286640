package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sensehq/sense/event"
)

// Processor is one entry of processors: a consumer of a pipeline that hands
// its events, filtered, to a sink at the pace the sink takes
// (docs/processors.md). Name, From.Pipeline and Sink.Type are required.
type Processor struct {
	// Name names the processor and its consumer group (processor.NAME):
	// 1 to 64 of a-z, 0-9, '.', '_', '-'.
	Name  string         `yaml:"name"`
	From  ProcessorFrom  `yaml:"from"`
	Where ProcessorWhere `yaml:"where"`
	Sink  ProcessorSink  `yaml:"sink"`
	Rate  Rate           `yaml:"rate"`
	Batch ProcessorBatch `yaml:"batch"`
	// MaxInFlightBytes bounds the bytes of events read and not yet
	// delivered, over all the processor's partitions. Default 8MiB.
	MaxInFlightBytes Size `yaml:"max_in_flight_bytes"`
	// DeadLetter is the pipeline that receives the events a sink refused
	// for good (a webhook's 4xx other than 408 and 429), each with the
	// reason in a header. Default NAME.dead-letter.
	DeadLetter string `yaml:"dead_letter"`
	// Paused starts the processor paused (sense processor resume).
	Paused bool `yaml:"paused"`
}

// ProcessorFrom selects what a processor reads.
type ProcessorFrom struct {
	Pipeline string `yaml:"pipeline"`
	// Priority lists the priority classes read (the lanes); empty: all.
	Priority []string `yaml:"priority"`
	// Jurisdiction keeps the events whose mask holds one of these
	// jurisdictions (codes or groups, "MA,SN"); empty: all.
	Jurisdiction string `yaml:"jurisdiction"`
	// Start is where a processor with nothing committed begins:
	// beginning (the default) or end.
	Start string `yaml:"start"`
}

// ProcessorWhere holds predicates on an event; an event passes when every
// one given holds.
type ProcessorWhere struct {
	// Key is the event's key, exactly.
	Key string `yaml:"key"`
	// KeyPrefix is a prefix of the event's key.
	KeyPrefix string `yaml:"key_prefix"`
	// Header maps a header name to the value one header of that name
	// must have.
	Header map[string]string `yaml:"header"`
	// JSON maps a field of the JSON object in the event's value (a dotted
	// path for nested objects: "log.level") to the value it must have, as
	// text (a string's characters, a number or true/false as written).
	JSON map[string]string `yaml:"json"`
}

// ProcessorSink is where a processor delivers. Type says which fields
// apply: webhook (url, format ndjson|json, timeout, headers), file (dir,
// format ndjson|parquet), postgres (dsn, table, timeout), pipeline
// (pipeline), kafka (brokers, topic, timeout), clickhouse (url, table,
// timeout, headers).
type ProcessorSink struct {
	Type     string            `yaml:"type"`
	URL      string            `yaml:"url"`
	Format   string            `yaml:"format"`
	Timeout  Duration          `yaml:"timeout"`
	Headers  map[string]string `yaml:"headers"`
	Dir      string            `yaml:"dir"`
	DSN      string            `yaml:"dsn"`
	Table    string            `yaml:"table"`
	Pipeline string            `yaml:"pipeline"`
	// Columns declares Parquet columns taken from the JSON object in each
	// event's value: field path (dotted for nested objects) -> type
	// (string, int64, double, bool or json). A file sink with format
	// parquet only.
	Columns map[string]string `yaml:"columns"`
	// Brokers and Topic are a kafka sink's cluster (host:port seeds) and
	// topic.
	Brokers []string `yaml:"brokers"`
	Topic   string   `yaml:"topic"`
	// Transactional writes each batch of a kafka sink in a Kafka
	// transaction, with the processor's progress (KIP-98).
	Transactional bool `yaml:"transactional"`
	// TransactionalIDPrefix starts the transactional ids of a
	// transactional kafka sink's producers, one per source partition:
	// PREFIX.PIPELINE.PARTITION. Default sense.processor.NAME.
	TransactionalIDPrefix string `yaml:"transactional_id_prefix"`
}

// ProcessorBatch bounds one delivery: at most MaxEvents events (default
// 1000), sent once Linger (default 20ms) has passed since its first event
// when it is not full.
type ProcessorBatch struct {
	MaxEvents int      `yaml:"max_events"`
	Linger    Duration `yaml:"linger"`
}

// The sink types.
const (
	SinkWebhook    = "webhook"
	SinkFile       = "file"
	SinkPostgres   = "postgres"
	SinkPipeline   = "pipeline"
	SinkClickHouse = "clickhouse"
	SinkKafka      = "kafka"
)

// Defaults of a processor.
const (
	DefaultProcessorMaxEvents  = 1000
	DefaultProcessorLinger     = Duration(20 * time.Millisecond)
	DefaultProcessorInFlight   = 8 * MiB
	DefaultSinkTimeout         = Duration(10 * time.Second)
	MaxProcessorMaxEvents      = 100000
	minProcessorInFlight       = 64 * KiB
	processorDeadLetterSuffix  = ".dead-letter"
	transactionalIDPrefix      = "sense.processor."
	maxTransactionalIDPrefix   = 200
	postgresTableNameMaxLength = 63
)

// Rate is a number of events per second; 0 means no bound. It is written
// as "50000/s", "3000/m", "100/ms" or a plain number of events per second.
type Rate float64

func (r Rate) String() string {
	if r == 0 {
		return "0"
	}
	return strconv.FormatFloat(float64(r), 'f', -1, 64) + "/s"
}

// ParseRate reads a rate as written in a config file; see Rate.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	num, unit, _ := strings.Cut(s, "/")
	per := 1.0
	switch strings.TrimSpace(unit) {
	case "", "s":
	case "ms":
		per = 1e-3
	case "m", "min":
		per = 60
	case "h":
		per = 3600
	default:
		return 0, hint("is not a rate; write events per unit of time, such as 50000/s, 3000/m or 100/ms")
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, hint("is not a rate; write events per unit of time, such as 50000/s, 3000/m or 100/ms (0: no bound)")
	}
	return Rate(f / per), nil
}

func init() {
	codecs[reflect.TypeFor[Rate]()] = codec{
		parse: func(s string) (reflect.Value, error) {
			r, err := ParseRate(s)
			return reflect.ValueOf(r), err
		},
		format: func(v reflect.Value) string { return Rate(v.Float()).String() },
	}
}

// ParseProcessors reads the processors: section of a YAML document (other
// top-level sections are ignored, so a node's config file serves) and
// checks it as Validate does, without a jurisdiction registry: a
// processor's from.jurisdiction is checked against the registry of the
// node it runs on when it starts. name is the document's name in errors.
func ParseProcessors(name string, data []byte) ([]Processor, error) {
	var doc struct {
		Processors []Processor `yaml:"processors"`
	}
	d := newDecoder()
	f := &fileDecoder{decoder: d, name: name, merging: make(map[*yaml.Node]bool), budget: maxNodes}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("config: %s is not valid YAML: %w", name, err)
	}
	n := resolve(&root)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config: %s is not a mapping with a processors: list", name)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "processors" {
			f.value(n.Content[i+1], reflect.ValueOf(&doc.Processors).Elem(), "processors")
		}
	}
	c := &Config{Processors: doc.Processors, sources: d.sources}
	v := &checker{c: c}
	v.processors()
	errs := append(d.errs, v.errs...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c.Processors, nil
}

// processors checks and fills in the processors' settings.
func (v *checker) processors() {
	seen := make(map[string]int)
	for i := range v.c.Processors {
		p := &v.c.Processors[i]
		key := fmt.Sprintf("processors[%d]", i)
		if !validName(p.Name, true) {
			v.fail(key+".name", p.Name, "is not a valid processor name; use 1 to %d of a-z, 0-9, '.', '_', '-'", maxNameLen)
		} else if j, dup := seen[p.Name]; dup {
			v.fail(key+".name", p.Name, "is already the name of processors[%d]; give each processor its own", j)
		} else {
			seen[p.Name] = i
		}
		v.processorFrom(key+".from", &p.From)
		for k := range p.Where.Header {
			if k == "" {
				v.fail(key+".where.header", "", "has an empty header name; name the header to match")
			}
		}
		for k := range p.Where.JSON {
			if k == "" || strings.HasPrefix(k, ".") || strings.HasSuffix(k, ".") || strings.Contains(k, "..") {
				v.fail(key+".where.json."+k, k, "is not a field path; write a field name, or names joined by dots for nested objects (log.level)")
			}
		}
		v.processorSink(key+".sink", p)
		if p.Batch.MaxEvents == 0 {
			p.Batch.MaxEvents = DefaultProcessorMaxEvents
		}
		if p.Batch.MaxEvents < 1 || p.Batch.MaxEvents > MaxProcessorMaxEvents {
			v.fail(key+".batch.max_events", strconv.Itoa(p.Batch.MaxEvents), "is out of range; use 1 to %d", MaxProcessorMaxEvents)
		}
		if p.Batch.Linger == 0 {
			p.Batch.Linger = DefaultProcessorLinger
		}
		if p.Batch.Linger < 0 {
			v.fail(key+".batch.linger", p.Batch.Linger.String(), "is negative; use a duration such as 20ms")
		}
		if p.MaxInFlightBytes == 0 {
			p.MaxInFlightBytes = DefaultProcessorInFlight
		}
		if p.MaxInFlightBytes < minProcessorInFlight {
			v.fail(key+".max_in_flight_bytes", p.MaxInFlightBytes.String(), "is too small; use at least %s, such as 16MiB", minProcessorInFlight)
		}
		if p.DeadLetter == "" && p.Name != "" {
			p.DeadLetter = p.Name + processorDeadLetterSuffix
		}
		if err := event.ValidatePipelineName(p.DeadLetter); err != nil && p.Name != "" {
			v.failErr(key+".dead_letter", p.DeadLetter, pipelineNameErr(err))
		}
	}
}

func (v *checker) processorFrom(key string, f *ProcessorFrom) {
	if f.Pipeline == "" {
		v.fail(key+".pipeline", "", "is missing; name the pipeline the processor reads")
	} else if err := event.ValidatePipelineName(f.Pipeline); err != nil {
		v.failErr(key+".pipeline", f.Pipeline, pipelineNameErr(err))
	}
	for j, s := range f.Priority {
		if _, err := event.ParsePriority(s); err != nil {
			v.failErr(fmt.Sprintf("%s.priority[%d]", key, j), s, hintWrap("is not a priority class; use low, medium or critical", err))
		}
	}
	for _, part := range strings.Split(f.Jurisdiction, ",") {
		if f.Jurisdiction != "" && strings.TrimSpace(part) == "" {
			v.fail(key+".jurisdiction", f.Jurisdiction, "has an empty entry; list codes or groups separated by commas, such as MA,SN")
			break
		}
	}
	switch f.Start {
	case "":
		f.Start = "beginning"
	case "beginning", "end":
	default:
		v.fail(key+".start", f.Start, "is not a start; use beginning or end")
	}
}

func (v *checker) processorSink(key string, p *Processor) {
	s := &p.Sink
	if s.Timeout == 0 {
		s.Timeout = DefaultSinkTimeout
	}
	if s.Timeout < 0 {
		v.fail(key+".timeout", s.Timeout.String(), "is negative; use a duration such as 10s")
	}
	unused := func(field, value string) {
		if value != "" {
			v.fail(key+"."+field, value, "does not apply to a %s sink; remove it", s.Type)
		}
	}
	switch s.Type {
	case SinkWebhook:
		u, err := url.Parse(s.URL)
		if s.URL == "" {
			v.fail(key+".url", "", "is missing; give the URL the webhook sink POSTs to, such as https://example.com/events")
		} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.fail(key+".url", s.URL, "is not an http:// or https:// URL")
		}
		if s.Format == "" {
			s.Format = "ndjson"
		}
		if s.Format != "ndjson" && s.Format != "json" {
			v.fail(key+".format", s.Format, "is not a webhook format; use ndjson (one event per line) or json (an array)")
		}
		unused("dir", s.Dir)
		unused("dsn", s.DSN)
		unused("table", s.Table)
		unused("pipeline", s.Pipeline)
	case SinkFile:
		if s.Dir == "" {
			v.fail(key+".dir", "", "is missing; give the directory the file sink writes to")
		}
		if s.Format == "" {
			s.Format = "ndjson"
		}
		switch s.Format {
		case "ndjson", "parquet":
		default:
			v.fail(key+".format", s.Format, "is not a file format; use ndjson or parquet")
		}
		if len(s.Columns) > 0 && s.Format != "parquet" {
			v.fail(key+".columns", "", "applies to format: parquet only; remove it or set format: parquet")
		}
		names := map[string]string{}
		for _, path := range sortedKeys(s.Columns) {
			typ := s.Columns[path]
			ck := key + ".columns." + path
			name := ParquetColumnName(path)
			if other, dup := names[name]; dup {
				v.fail(ck, path, "would be the column %q, as %s is; keep one", name, other)
			}
			names[name] = path
			switch {
			case path == "" || strings.HasPrefix(path, ".") || strings.HasSuffix(path, ".") || strings.Contains(path, ".."):
				v.fail(ck, path, "is not a field path; write a field name, or names joined by dots for nested objects (meta.user)")
			case parquetBaseColumns[name]:
				v.fail(ck, path, "would be the column %q, which every Parquet file of the sink has already; a field of that name is read as value's", name)
			}
			switch typ {
			case "string", "int64", "double", "bool", "json":
			default:
				v.fail(ck, typ, "is not a column type; use string, int64, double, bool or json")
			}
		}
		unused("url", s.URL)
		unused("dsn", s.DSN)
		unused("table", s.Table)
		unused("pipeline", s.Pipeline)
	case SinkPostgres:
		if s.DSN == "" {
			v.fail(key+".dsn", "", "is missing; give a PostgreSQL connection string, such as postgres://user@127.0.0.1:5432/db")
		}
		if s.Table == "" {
			v.fail(key+".table", "", "is missing; name the table the rows go to (created when missing)")
		} else if !validSQLName(s.Table) {
			v.fail(key+".table", s.Table, "is not a table name; use 1 to %d of a-z, 0-9 and '_', starting with a letter or '_' (optionally schema.table)", postgresTableNameMaxLength)
		}
		unused("url", s.URL)
		unused("dir", s.Dir)
		unused("format", s.Format)
		unused("pipeline", s.Pipeline)
	case SinkPipeline:
		if s.Pipeline == "" {
			v.fail(key+".pipeline", "", "is missing; name the Sense pipeline the events go to")
		} else if err := event.ValidatePipelineName(s.Pipeline); err != nil {
			v.failErr(key+".pipeline", s.Pipeline, pipelineNameErr(err))
		} else if s.Pipeline == p.From.Pipeline {
			v.fail(key+".pipeline", s.Pipeline, "is the pipeline the processor reads; a processor that writes into its own source never catches up; name another")
		}
		unused("url", s.URL)
		unused("dir", s.Dir)
		unused("dsn", s.DSN)
		unused("table", s.Table)
		unused("format", s.Format)
	case SinkKafka:
		if len(s.Brokers) == 0 {
			v.fail(key+".brokers", "", "is missing; list the Kafka cluster's bootstrap addresses, such as [10.0.0.1:9092]")
		}
		for i, b := range s.Brokers {
			if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
				v.fail(fmt.Sprintf("%s.brokers[%d]", key, i), b, "is not host:port")
			}
		}
		if s.Topic == "" {
			v.fail(key+".topic", "", "is missing; name the topic the events go to")
		} else if err := event.ValidatePipelineName(s.Topic); err != nil {
			v.failErr(key+".topic", s.Topic, hintWrap("is not a valid topic name; use 1 to 249 of a-z, A-Z, 0-9, '.', '_', '-'", err))
		}
		switch {
		case s.TransactionalIDPrefix != "" && !s.Transactional:
			v.fail(key+".transactional_id_prefix", s.TransactionalIDPrefix, "applies to a transactional sink only; add transactional: true or remove it")
		case s.Transactional && s.TransactionalIDPrefix == "" && p.Name != "":
			s.TransactionalIDPrefix = transactionalIDPrefix + p.Name
		case s.Transactional && !validTransactionalIDPrefix(s.TransactionalIDPrefix):
			v.fail(key+".transactional_id_prefix", s.TransactionalIDPrefix, "is not a transactional id prefix; use 1 to %d of a-z, A-Z, 0-9, '.', '_', '-'", maxTransactionalIDPrefix)
		}
		unused("url", s.URL)
		unused("dir", s.Dir)
		unused("dsn", s.DSN)
		unused("table", s.Table)
		unused("format", s.Format)
		unused("pipeline", s.Pipeline)
	case SinkClickHouse:
		u, err := url.Parse(s.URL)
		if s.URL == "" {
			v.fail(key+".url", "", "is missing; give ClickHouse's HTTP interface, such as http://127.0.0.1:8123")
		} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			v.fail(key+".url", s.URL, "is not the URL of ClickHouse's HTTP interface; write http://host:8123 (no path, no query)")
		}
		s.URL = strings.TrimSuffix(s.URL, "/")
		if s.Table == "" {
			v.fail(key+".table", "", "is missing; name the table the rows go to (created when missing), such as events or db.events")
		} else if !validSQLName(s.Table) {
			v.fail(key+".table", s.Table, "is not a table name; use 1 to %d of a-z, 0-9 and '_', starting with a letter or '_' (optionally database.table)", postgresTableNameMaxLength)
		}
		unused("dir", s.Dir)
		unused("dsn", s.DSN)
		unused("format", s.Format)
		unused("pipeline", s.Pipeline)
	case "":
		v.fail(key+".type", "", "is missing; use webhook, file, postgres, pipeline, kafka or clickhouse")
	default:
		v.fail(key+".type", s.Type, "is not a sink type; use webhook, file, postgres, pipeline, kafka or clickhouse")
	}
	if s.Type != SinkFile && s.Type != "" && len(s.Columns) > 0 {
		v.fail(key+".columns", "", "applies to a file sink with format: parquet; remove it")
	}
	if s.Type != SinkKafka && s.Type != "" {
		if s.Transactional {
			v.fail(key+".transactional", "true", "applies to a kafka sink only; remove it")
		}
		if s.TransactionalIDPrefix != "" {
			v.fail(key+".transactional_id_prefix", s.TransactionalIDPrefix, "applies to a kafka sink only; remove it")
		}
		if len(s.Brokers) > 0 {
			v.fail(key+".brokers", strings.Join(s.Brokers, ","), "does not apply to a %s sink; remove it", s.Type)
		}
		if s.Topic != "" {
			v.fail(key+".topic", s.Topic, "does not apply to a %s sink; remove it", s.Type)
		}
	}
}

// validTransactionalIDPrefix reports whether s is 1 to
// maxTransactionalIDPrefix of a-z, A-Z, 0-9, '.', '_', '-'.
func validTransactionalIDPrefix(s string) bool {
	if s == "" || len(s) > maxTransactionalIDPrefix {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// parquetBaseColumns are the columns of every Parquet file of the file
// sink (processor.ParquetRow).
var parquetBaseColumns = map[string]bool{"pipeline": true, "partition": true, "hub": true, "offset": true, "key": true,
	"value": true, "headers": true, "jurisdiction": true, "priority": true, "timestamp": true}

// ParquetColumnName is the column of a declared field path: its dots
// written as underscores (meta.user: meta_user).
func ParquetColumnName(path string) string { return strings.ReplaceAll(path, ".", "_") }

// validSQLName reports whether s is a plain SQL identifier, or two joined
// by a dot, each of which needs no quoting.
func validSQLName(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) > 2 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > postgresTableNameMaxLength {
			return false
		}
		for i := 0; i < len(p); i++ {
			c := p[i]
			if !('a' <= c && c <= 'z' || c == '_' || i > 0 && '0' <= c && c <= '9') {
				return false
			}
		}
	}
	return true
}
