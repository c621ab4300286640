// Package config reads, checks and writes the configuration of a sense
// process.
//
// # Sources and precedence
//
// A setting is taken from the first of these that gives it:
//
//  1. a command-line flag (RegisterFlags adds them: --data, --fsync, ...);
//  2. an environment variable: SENSE_ followed by the setting's key,
//     upper-cased, with '.' written as '_' (router.memory_limit is
//     SENSE_ROUTER_MEMORY_LIMIT), plus SENSE_DATA for node.data_dir;
//  3. the YAML config file named by --config or SENSE_CONFIG;
//  4. the default, filled in by Validate.
//
// With no file, no variable and no flag, the configuration is dev mode: one
// node "n1" with data in ./data, listeners on 127.0.0.1 (native 7070, QUIC
// 7071, HTTP 8080, Kafka 9092), the single jurisdiction ZZ, one hub "local"
// of jurisdiction "*", fsync always, and pipelines and Kafka topics created
// on first use. Dev mode lasts as long as cluster.peers is empty; outside it,
// hubs must be declared and auto-creation is off unless turned on.
//
// # Clusters
//
// cluster.peers lists every node of a cluster, this one included, by id and
// address; node.id must be one of them, and cluster.listen defaults to its
// address. Each hub is held by its nodes (hubs[].nodes, default every peer:
// see Config.HubNodes), and each buffer of a pipeline in a hub is held by
// Pipeline.ReplicationIn of them: pipelines[].replication, or 3 (at most
// the hub's node count) when it is 0. A pipeline has partitions in every
// hub, so an explicit replication must fit every hub.
//
// Lists of mappings (hubs, pipelines) and groups can only be set in the file.
// The list jurisdictions may be given to a variable as comma-separated text
// (SENSE_JURISDICTIONS=MA,SN), and so may cluster.peers, as id=host:port
// entries (SENSE_CLUSTER_PEERS=n1=10.0.0.1:7100,n2=10.0.0.2:7100).
//
// # Strictness
//
// Mistakes are errors, never silently ignored: an unknown or repeated key in
// the file, an unknown SENSE_<SECTION>_... variable, and every bad value.
// Each problem is a *FieldError naming the key, the value, what to do and
// where the value came from, and all of them are reported at once:
//
//	config: pipelines[0].partitons is not a known key; did you mean partitions? (sense.yaml line 9)
//	config: hubs[1].jurisdiction "XX" is not a registered jurisdiction (registered: MA, SN); add it to jurisdictions or fix the hub (sense.yaml line 14)
//
// Sizes are written in bytes or with a binary unit (KiB, MiB, GiB, TiB);
// decimal units such as MB are rejected as ambiguous. Durations are Go
// durations ("24h", "90m") or whole days ("7d"). An empty value means the
// default.
//
// # Use
//
//	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
//	config.RegisterFlags(fs)
//	if err := fs.Parse(os.Args[1:]); err != nil { ... }
//	cfg, err := config.Load(fs, os.Environ())
//	if err != nil { ... } // every problem, one per line
//	reg := cfg.Registry() // jurisdiction codes <-> bits, groups
//	for _, h := range cfg.Hubs {
//		fmt.Println(h.Name, reg.Format(h.Mask()))
//	}
//
// A minimal file:
//
//	node: {id: n1, data_dir: /var/lib/sense}
//	jurisdictions: [MA, SN, NG, KE]   # bit i = i-th entry; append only
//	groups: {ECOWAS: [SN, NG]}
//	hubs:
//	  - {name: tangier, jurisdiction: MA, policy: {deny_pipelines: [ads]}}
//	  - {name: dakar, jurisdiction: SN}
//	pipelines:
//	  - {name: payments, partitions: 2, retention: 7d, default_jurisdiction: ECOWAS}
//	durability: {fsync: always}
//	router: {memory_limit: 256MiB}
//
// docs/configuration.md lists every key with its default, variable and
// flag.
package config
