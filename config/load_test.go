package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/sensehq/sense/seglog"
)

// writeFile writes a config file into a fresh directory and returns its path.
func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sense.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// flags returns a flag set with RegisterFlags' flags, parsed from args.
func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestPrecedence(t *testing.T) {
	path := writeFile(t, "node: {data_dir: /from/file}\ndurability: {fsync: never}\n")
	env := []string{"SENSE_CONFIG=" + path, "SENSE_DATA=/from/env", "SENSE_DURABILITY_FSYNC=interval:5ms"}
	interval := seglog.Durability{Mode: seglog.SyncInterval, Interval: 5 * time.Millisecond}
	tests := []struct {
		name      string
		fs        *pflag.FlagSet
		environ   []string
		dataDir   string
		fsync     seglog.Durability
		dirSource string
	}{
		{"defaults", nil, nil, "./data", seglog.Durability{}, ""},
		{"file", flags(t, "--config", path), nil, "/from/file", seglog.Durability{Mode: seglog.SyncNever}, path + " line 1"},
		{"file named by env", nil, env[:1], "/from/file", seglog.Durability{Mode: seglog.SyncNever}, path + " line 1"},
		{"env over file", nil, env, "/from/env", interval, "env SENSE_DATA"},
		{"long env name", nil, []string{"SENSE_CONFIG=" + path, "SENSE_NODE_DATA_DIR=/from/env2"}, "/from/env2", seglog.Durability{Mode: seglog.SyncNever}, "env SENSE_NODE_DATA_DIR"},
		{"flags over env", flags(t, "--data", "/from/flag", "--fsync=always"), env, "/from/flag", seglog.Durability{}, "flag --data"},
		{"one flag", flags(t, "--data", "/from/flag"), env, "/from/flag", interval, "flag --data"},
		{"flags, no env", flags(t, "--config", path, "--fsync", "interval:5ms"), nil, "/from/file", interval, path + " line 1"},
		{"empty env ignored", nil, append(env[:1:1], "SENSE_DATA=", "SENSE_DURABILITY_FSYNC="), "/from/file", seglog.Durability{Mode: seglog.SyncNever}, path + " line 1"},
		{"unset flags ignored", flags(t), env, "/from/env", interval, "env SENSE_DATA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.fs, tt.environ)
			if err != nil {
				t.Fatal(err)
			}
			if c.Node.DataDir != tt.dataDir || c.Durability.Fsync != tt.fsync {
				t.Errorf("data_dir %q, fsync %v; want %q, %v", c.Node.DataDir, c.Durability.Fsync, tt.dataDir, tt.fsync)
			}
			if got := c.Source("node.data_dir"); got != tt.dirSource {
				t.Errorf("Source(node.data_dir) = %q, want %q", got, tt.dirSource)
			}
		})
	}
}

func TestEnvAndFlagsSetEverySection(t *testing.T) {
	env := []string{
		"HOME=/root", // not ours
		"SENSE_NODE_ID=n7",
		"SENSE_LISTENERS_NATIVE=127.0.0.1:1",
		"SENSE_LISTENERS_KAFKA_ADVERTISED=kafka.example.com:9092",
		"SENSE_JURISDICTIONS=MA, SN",
		"SENSE_DURABILITY_SEGMENT_BYTES=1GiB",
		"SENSE_DURABILITY_GROUP_COMMIT_INTERVAL=0",
		"SENSE_STORAGE_MAX_OPEN_FILES=500",
		"SENSE_STORAGE_PREALLOCATE_BYTES=0",
		"SENSE_ROUTER_MEMORY_LIMIT=64MiB",
		"SENSE_ROUTER_AUTO_CREATE_PIPELINES=false",
		"SENSE_ROUTER_SHED_LOW_AT=0.25",
		"SENSE_ALERTS_WEBHOOK=http://localhost:9000/hook",
		"SENSE_KAFKA_AUTO_CREATE_TOPICS=false",
		"SENSE_KAFKA_MAX_REQUEST_BYTES=1048576",
		"SENSE_LOG_LEVEL=warn",
		"SENSE_ADDR=somewhere:1", // no section: left to other readers
	}
	fs := flags(t, "--node-id=n8", "--native-addr=off", "--http-addr=:0", "--kafka-addr=127.0.0.1:0",
		"--quic-addr=[::1]:7071", "--log-format=text", "--log-level=debug")
	c, err := Load(fs, env)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		key       string
		got, want any
	}{
		{"node.id", c.Node.ID, "n8"},
		{"listeners.native", c.Listeners.Native, "off"},
		{"listeners.http", c.Listeners.HTTP, ":0"},
		{"listeners.kafka", c.Listeners.Kafka, "127.0.0.1:0"},
		{"listeners.kafka_advertised", c.Listeners.KafkaAdvertised, "kafka.example.com:9092"},
		{"listeners.quic", c.Listeners.QUIC, "[::1]:7071"},
		{"jurisdictions", c.Jurisdictions, []string{"MA", "SN"}},
		{"durability.segment_bytes", c.Durability.SegmentBytes, GiB},
		{"durability.group_commit_interval", c.GroupCommitInterval(), time.Duration(0)},
		{"storage.max_open_files", c.Storage.MaxOpenFiles, 500},
		{"storage.preallocate_bytes", *c.Storage.PreallocateBytes, Size(0)},
		{"router.memory_limit", c.Router.MemoryLimit, 64 * MiB},
		{"router.auto_create_pipelines", *c.Router.AutoCreatePipelines, false},
		{"router.shed_low_at", c.Router.ShedLowAt, 0.25},
		{"alerts.webhook", c.Alerts.Webhook, "http://localhost:9000/hook"},
		{"kafka.auto_create_topics", *c.Kafka.AutoCreateTopics, false},
		{"kafka.max_request_bytes", c.Kafka.MaxRequestBytes, MiB},
		{"log.level", c.Log.Level.String(), "DEBUG"},
		{"log.format", c.Log.Format, LogText},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %v, want %v", ch.key, ch.got, ch.want)
		}
	}
	if got := c.Source("jurisdictions[1]"); got != "env SENSE_JURISDICTIONS" {
		t.Errorf("Source(jurisdictions[1]) = %q", got)
	}
}

func TestEnvReplacesFileList(t *testing.T) {
	path := writeFile(t, "jurisdictions: [MA, SN, NG]\n")
	c, err := Load(flags(t, "--config", path), []string{"SENSE_JURISDICTIONS=KE"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Jurisdictions, []string{"KE"}) || c.Source("jurisdictions[2]") != "" {
		t.Errorf("jurisdictions %v, stale source %q; want [KE] and none", c.Jurisdictions, c.Source("jurisdictions[2]"))
	}
}

func TestLoadErrors(t *testing.T) {
	path := writeFile(t, "router: {memory_limit: 1GiB}\n")
	tests := []struct {
		name    string
		fs      *pflag.FlagSet
		environ []string
		want    []string
	}{
		{"missing file", flags(t, "--config", "/nonexistent/sense.yaml"), nil,
			[]string{"config: read the config file given by flag --config", "no such file"}},
		{"missing file from env", nil, []string{"SENSE_CONFIG=/nonexistent/sense.yaml"},
			[]string{"given by env SENSE_CONFIG"}},
		{"unknown variable in a section", nil, []string{"SENSE_ROUTER_MEMORY_LIMT=1GiB"},
			[]string{"config: SENSE_ROUTER_MEMORY_LIMT is not a known setting; did you mean SENSE_ROUTER_MEMORY_LIMIT?"}},
		{"section variable", nil, []string{"SENSE_NODE=n1"},
			[]string{"config: SENSE_NODE is not a known setting", "SENSE_NODE_ID"}},
		{"file-only section", nil, []string{"SENSE_HUBS=x"},
			[]string{"config: SENSE_HUBS is not read: hubs can only be set in the config file"}},
		{"bad env value", nil, []string{"SENSE_ROUTER_MEMORY_LIMIT=lots"},
			[]string{`config: router.memory_limit "lots" is not a size`, "(env SENSE_ROUTER_MEMORY_LIMIT)"}},
		{"bad flag value", flags(t, "--fsync", "sometimes"), nil,
			[]string{`config: durability.fsync "sometimes" is not an fsync policy`, "(flag --fsync)"}},
		{"conflicting data dirs", nil, []string{"SENSE_DATA=/a", "SENSE_NODE_DATA_DIR=/b"},
			[]string{`config: node.data_dir "/a" conflicts with SENSE_NODE_DATA_DIR="/b"; unset one of them (env SENSE_DATA)`}},
		{"validation names the env var", nil, []string{"SENSE_ROUTER_MAX_EVENT_BYTES=2MiB", "SENSE_ROUTER_MEMORY_LIMIT=1MiB"},
			[]string{`config: router.max_event_bytes "2MiB" is larger than router.memory_limit (1MiB)`, "(env SENSE_ROUTER_MAX_EVENT_BYTES)"}},
		{"validation after the file", flags(t, "--config", path, "--native-addr", "localhost"), nil,
			[]string{`config: listeners.native "localhost" is not a host:port address`, "(flag --native-addr)"}},
		{"every problem at once", flags(t, "--fsync", "x", "--node-id", "N!"), []string{"SENSE_LOG_LEVEL=loud"},
			[]string{"durability.fsync", "node.id", "log.level"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.fs, tt.environ)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", c)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestFieldErrorIsInspectable(t *testing.T) {
	_, err := Load(flags(t, "--fsync", "sometimes"), nil)
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v is not a *FieldError", err)
	}
	if fe.Key != "durability.fsync" || fe.Value != "sometimes" || fe.Source != "flag --fsync" {
		t.Errorf("FieldError = %+v", fe)
	}
}
