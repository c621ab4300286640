package config

import (
	"strings"
	"testing"
)

func TestProcessorsValidate(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{`processors: [{name: a, from: {pipeline: p}, sink: {type: s3}}]`, `processors[0].sink.type "s3" is not a sink type`},
		{`processors: [{name: a, from: {pipeline: p}, sink: {type: kafka, topic: t}}]`, `processors[0].sink.brokers is missing`},
		{`processors: [{name: a, from: {pipeline: p}, sink: {type: kafka, brokers: [nope], topic: t}}]`, `processors[0].sink.brokers[0] "nope" is not host:port`},
		{`processors: [{name: a, from: {pipeline: p}, sink: {type: file, dir: /x, topic: t}}]`, `processors[0].sink.topic "t" does not apply to a file sink`},
		{`processors: [{name: a, from: {pipeline: p}, sink: {type: file, dir: /x, transactional: true}}]`, `processors[0].sink.transactional "true" applies to a kafka sink only`},
		{`processors: [{name: a, from: {pipeline: p}, sink: {type: kafka, brokers: ["h:9092"], topic: t, transactional_id_prefix: x}}]`, `processors[0].sink.transactional_id_prefix "x" applies to a transactional sink only; add transactional: true`},
		{`processors: [{name: a, from: {pipeline: p}, sink: {type: kafka, brokers: ["h:9092"], topic: t, transactional: true, transactional_id_prefix: "a b"}}]`, `processors[0].sink.transactional_id_prefix "a b" is not a transactional id prefix`},
		{`processors: [{name: a, from: {pipeline: p}, sink: {type: webhook}}]`, `processors[0].sink.url is missing`},
		{`processors: [{name: a, from: {pipeline: p}, sink: {type: webhook, url: "ftp://x"}}]`, `processors[0].sink.url "ftp://x" is not an http:// or https:// URL`},
		{`processors: [{name: a, from: {pipeline: p}, sink: {type: file, dir: /tmp, url: "http://x"}}]`, `processors[0].sink.url "http://x" does not apply to a file sink`},
		{`processors: [{name: a, from: {pipeline: p}, sink: {type: file, dir: /tmp, format: csv}}]`, `processors[0].sink.format "csv" is not a file format; use ndjson or parquet`},
		{`processors: [{name: a, from: {pipeline: p}, sink: {type: postgres, dsn: "postgres://x", table: "a;drop"}}]`, `processors[0].sink.table "a;drop" is not a table name`},
		{`processors: [{name: a, from: {pipeline: p}, sink: {type: pipeline, pipeline: p}}]`, `processors[0].sink.pipeline "p" is the pipeline the processor reads`},
		{`processors: [{name: a, from: {pipeline: p, priority: [urgent]}, sink: {type: pipeline, pipeline: q}}]`, `processors[0].from.priority[0] "urgent" is not a priority class`},
		{`processors: [{name: a, from: {pipeline: p}, rate: fast, sink: {type: pipeline, pipeline: q}}]`, `processors[0].rate "fast" is not a rate`},
		{`processors: [{name: a, from: {pipeline: p}, sink: {type: pipeline, pipeline: q}}, {name: a, from: {pipeline: p}, sink: {type: pipeline, pipeline: r}}]`, `processors[1].name "a" is already the name of processors[0]`},
		{`processors: [{name: a, sink: {type: pipeline, pipeline: q}}]`, `processors[0].from.pipeline is missing`},
		{`processors: [{name: a, from: {pipeline: p}, batch: {max_events: 0, linger: -1s}, sink: {type: pipeline, pipeline: q}}]`, `processors[0].batch.linger`},
		{`processors: [{name: a, from: {pipeline: p}, max_in_flight_bytes: 1KiB, sink: {type: pipeline, pipeline: q}}]`, `processors[0].max_in_flight_bytes "1KiB" is too small`},
		{`processors: [{name: a, from: {pipeline: p}, sink: {type: pipeline, pipeline: q, tpye: x}}]`, `processors[0].sink.tpye`},
	} {
		_, err := Parse("t.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.yaml, err, tc.want)
		}
		_, err = ParseProcessors("t.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseProcessors %s:\n got %v\nwant %s", tc.yaml, err, tc.want)
		}
	}
}

func TestProcessorsDefaults(t *testing.T) {
	ps, err := ParseProcessors("t.yaml", []byte("node: {id: n9}\nprocessors:\n  - {name: a, from: {pipeline: p}, rate: 3000/m, sink: {type: webhook, url: 'http://127.0.0.1:1/x'}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := ps[0]
	if p.Rate != 50 || p.Batch.MaxEvents != DefaultProcessorMaxEvents || p.Batch.Linger != DefaultProcessorLinger ||
		p.MaxInFlightBytes != DefaultProcessorInFlight || p.DeadLetter != "a.dead-letter" || p.From.Start != "beginning" ||
		p.Sink.Format != "ndjson" || p.Sink.Timeout != DefaultSinkTimeout {
		t.Fatalf("defaults: %+v", p)
	}
	for in, want := range map[string]Rate{"50000/s": 50000, "100/ms": 100000, "60/m": 1, "7": 7, "0": 0} {
		if r, err := ParseRate(in); err != nil || r != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, r, err, want)
		}
	}
}

func TestProcessorsTransactionalDefault(t *testing.T) {
	ps, err := ParseProcessors("t.yaml", []byte(`processors: [{name: a, from: {pipeline: p}, sink: {type: kafka, brokers: ["h:9092"], topic: t, transactional: true}}, {name: b, from: {pipeline: p}, sink: {type: kafka, brokers: ["h:9092"], topic: t}}]`))
	if err != nil {
		t.Fatal(err)
	}
	if got := ps[0].Sink.TransactionalIDPrefix; got != "sense.processor.a" {
		t.Fatalf("transactional_id_prefix defaults to %q, want sense.processor.a", got)
	}
	if got := ps[1].Sink.TransactionalIDPrefix; got != "" {
		t.Fatalf("a sink that is not transactional has the prefix %q", got)
	}
}

func TestProcessorsColumns(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{`processors: [{name: a, from: {pipeline: p}, sink: {type: file, dir: /x, columns: {amount: double}}}]`, `processors[0].sink.columns applies to format: parquet only`},
		{`processors: [{name: a, from: {pipeline: p}, sink: {type: file, dir: /x, format: parquet, columns: {amount: decimal}}}]`, `processors[0].sink.columns.amount "decimal" is not a column type`},
		{`processors: [{name: a, from: {pipeline: p}, sink: {type: file, dir: /x, format: parquet, columns: {offset: int64}}}]`, `would be the column "offset", which every Parquet file of the sink has already`},
		{`processors: [{name: a, from: {pipeline: p}, sink: {type: file, dir: /x, format: parquet, columns: {a.b: int64, a_b: string}}}]`, `would be the column "a_b", as a.b is`},
		{`processors: [{name: a, from: {pipeline: p}, sink: {type: webhook, url: "http://x", columns: {a: int64}}}]`, `processors[0].sink.columns applies to a file sink`},
	} {
		if _, err := ParseProcessors("t.yaml", []byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.yaml, err, tc.want)
		}
	}
	if _, err := ParseProcessors("t.yaml", []byte(`processors: [{name: a, from: {pipeline: p}, sink: {type: file, dir: /x, format: parquet, columns: {meta.user: int64, amount: double}}}]`)); err != nil {
		t.Fatal(err)
	}
}
