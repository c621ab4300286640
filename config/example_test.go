package config_test

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/sensehq/sense/config"
)

func ExampleLoad() {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	config.RegisterFlags(fs)
	if err := fs.Parse([]string{"--fsync", "interval:10ms"}); err != nil {
		panic(err)
	}
	// Pass os.Environ() in a real program.
	cfg, err := config.Load(fs, []string{"SENSE_DATA=/tmp/sense", "SENSE_ROUTER_MEMORY_LIMIT=64MiB"})
	if err != nil {
		fmt.Println(err)
		return
	}
	hub := cfg.Hubs[0]
	fmt.Println(cfg.Node.DataDir, cfg.Durability.Fsync, cfg.Router.MemoryLimit)
	fmt.Println(hub.Name, cfg.Registry().Format(hub.Mask()), *cfg.Router.AutoCreatePipelines)
	fmt.Println(cfg.Source("node.data_dir"))
	// Output:
	// /tmp/sense interval:10ms 64MiB
	// local ZZ true
	// env SENSE_DATA
}

func ExampleParse() {
	_, err := config.Parse("sense.yaml", []byte(`
jurisdictions: [MA, SN]
hubs:
  - {name: tangier, jurisdiction: MA}
  - {name: accra, jurisdiction: GH}
pipelines: [{name: payments, partitons: 2}]
`))
	fmt.Println(err)
	// Output:
	// config: pipelines[0].partitons is not a known key; did you mean partitions? (sense.yaml line 6)
	// config: hubs[1].jurisdiction "GH" is not a registered jurisdiction (registered: MA, SN); add it to jurisdictions or fix the hub (sense.yaml line 5)
}

func ExampleConfig_HubNodes() {
	cfg, err := config.Parse("sense.yaml", []byte(`
node: {id: n1}
jurisdictions: [MA, SN]
cluster:
  peers: [{id: n1, addr: 10.0.0.1:7100}, {id: n2, addr: 10.0.0.2:7100}, {id: n3, addr: 10.0.0.3:7100}]
hubs:
  - {name: tangier, jurisdiction: MA}
  - {name: dakar, jurisdiction: SN, nodes: [n2, n3]}
pipelines:
  - {name: payments}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	p := cfg.Pipelines[0]
	for _, hub := range []string{"tangier", "dakar"} {
		nodes := cfg.HubNodes(hub)
		fmt.Println(hub, nodes, p.ReplicationIn(len(nodes)))
	}
	fmt.Println(cfg.Cluster.Listen)
	// Output:
	// tangier [n1 n2 n3] 3
	// dakar [n2 n3] 2
	// 10.0.0.1:7100
}
