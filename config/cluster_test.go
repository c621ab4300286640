package config

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// clusterYAML is the three-node example of docs/configuration.md.
const clusterYAML = `
node: {id: n1, data_dir: ./data}
jurisdictions: [MA, SN]
cluster:
  listen: 127.0.0.1:7100
  advertise: ""
  peers: [{id: n1, addr: 127.0.0.1:7100}, {id: n2, addr: 127.0.0.1:7200}, {id: n3, addr: 127.0.0.1:7300}]
hubs:
  - {name: tangier, jurisdiction: MA, nodes: [n1, n2, n3]}
  - {name: dakar, jurisdiction: SN, nodes: [n3, n2]}
  - {name: rabat, jurisdiction: MA}
pipelines:
  - {name: payments, partitions: 2, replication: 1}
  - {name: health, replication: 0}
`

func TestClusterFile(t *testing.T) {
	c, err := Parse("sense.yaml", []byte(clusterYAML))
	if err != nil {
		t.Fatal(err)
	}
	want := Cluster{Listen: "127.0.0.1:7100", Peers: []Peer{
		{ID: "n1", Addr: "127.0.0.1:7100"}, {ID: "n2", Addr: "127.0.0.1:7200"}, {ID: "n3", Addr: "127.0.0.1:7300"},
	}}
	if !reflect.DeepEqual(c.Cluster, want) {
		t.Errorf("Cluster = %+v, want %+v", c.Cluster, want)
	}
	if c.DevMode() || !c.Cluster.Enabled() {
		t.Error("a config with peers is in dev mode")
	}
	if *c.Router.AutoCreatePipelines || *c.Kafka.AutoCreateTopics {
		t.Error("auto-creation is on by default in a cluster")
	}
	if got := c.Cluster.AdvertiseAddr(); got != "127.0.0.1:7100" {
		t.Errorf("AdvertiseAddr() = %q, want cluster.listen", got)
	}
	if got := c.Source("cluster.peers[1].addr"); got != "sense.yaml line 7" {
		t.Errorf(`Source("cluster.peers[1].addr") = %q, want "sense.yaml line 7"`, got)
	}
	nodes := []struct {
		hub  string
		want []string
	}{
		{"tangier", []string{"n1", "n2", "n3"}},
		{"dakar", []string{"n3", "n2"}}, // in the hub's order
		{"rabat", []string{"n1", "n2", "n3"}},
		{"nowhere", nil},
	}
	for _, n := range nodes {
		if got := c.HubNodes(n.hub); !slices.Equal(got, n.want) {
			t.Errorf("HubNodes(%q) = %v, want %v", n.hub, got, n.want)
		}
	}
	// The result is the caller's to change.
	c.HubNodes("dakar")[0] = "changed"
	c.HubNodes("rabat")[0] = "changed"
	if c.Hubs[1].Nodes[0] != "n3" || c.Cluster.Peers[0].ID != "n1" {
		t.Error("changing HubNodes' result changed the config")
	}
	if got := c.Pipelines[0].ReplicationIn(len(c.HubNodes("dakar"))); got != 1 {
		t.Errorf("payments' replication in dakar = %d, want 1", got)
	}
	if got := c.Pipelines[1].ReplicationIn(len(c.HubNodes("dakar"))); got != 2 {
		t.Errorf("health's replication in dakar = %d, want 2 (every node of a hub smaller than the default)", got)
	}

	before := *c
	if err := c.Validate(); err != nil || !reflect.DeepEqual(before, *c) {
		t.Errorf("a second Validate: %v, changed %v", err, !reflect.DeepEqual(before, *c))
	}

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
	if again, _ := back.Marshal(); !bytes.Equal(again, out) {
		t.Errorf("Marshal is not stable:\n%s\nthen\n%s", out, again)
	}
	for _, w := range []string{"listen: 127.0.0.1:7100", "- id: n2\n      addr: 127.0.0.1:7200", "nodes: [n3, n2]", "replication: 1"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("Marshal output lacks %q:\n%s", w, out)
		}
	}
}

func TestClusterDefaults(t *testing.T) {
	// cluster.listen defaults to this node's own address among the peers.
	c, err := Parse("", []byte(`
node: {id: n2}
cluster: {peers: [{id: n1, addr: 'a.example.com:7100'}, {id: n2, addr: 'b.example.com:7100'}]}
hubs: [{name: h, jurisdiction: '*'}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.Listen != "b.example.com:7100" || c.Cluster.AdvertiseAddr() != "b.example.com:7100" {
		t.Errorf("listen %q, advertised %q; want n2's address b.example.com:7100", c.Cluster.Listen, c.Cluster.AdvertiseAddr())
	}
	if c.Source("cluster.listen") != "" {
		t.Errorf("a default has the source %q", c.Source("cluster.listen"))
	}

	// An advertised address wins; a single-node cluster is a cluster.
	c, err = Parse("", []byte(`
cluster: {listen: ':7100', advertise: 'n1.example.com:7100', peers: [{id: n1, addr: 'n1.example.com:7100'}]}
hubs: [{name: h, jurisdiction: '*'}]
pipelines: [{name: p}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.DevMode() || c.Cluster.Listen != ":7100" || c.Cluster.AdvertiseAddr() != "n1.example.com:7100" {
		t.Errorf("dev mode %v, listen %q, advertised %q", c.DevMode(), c.Cluster.Listen, c.Cluster.AdvertiseAddr())
	}
	if got := c.Pipelines[0].ReplicationIn(len(c.HubNodes("h"))); got != 1 {
		t.Errorf("default replication in a one-node hub = %d, want 1", got)
	}

	// In dev mode this node holds every hub.
	d := Default()
	if got := d.HubNodes(DefaultHubName); !slices.Equal(got, []string{DefaultNodeID}) {
		t.Errorf("dev mode HubNodes(local) = %v, want [n1]", got)
	}
	if d.HubNodes("other") != nil {
		t.Error("HubNodes of an unknown hub is not nil")
	}
	if d.Cluster.Enabled() || d.Cluster.AdvertiseAddr() != "" {
		t.Errorf("dev mode cluster = %+v", d.Cluster)
	}
}

func TestReplicationIn(t *testing.T) {
	tests := []struct{ replication, hubNodes, want int }{
		{0, 1, 1}, {0, 2, 2}, {0, 3, 3}, {0, 5, 3}, {0, 0, 0},
		{1, 5, 1}, {2, 2, 2}, {5, 7, 5}, {7, 7, 7},
		{3, 2, 2}, // not a validated config: never more replicas than nodes
	}
	for _, tt := range tests {
		if got := (Pipeline{Replication: tt.replication}).ReplicationIn(tt.hubNodes); got != tt.want {
			t.Errorf("replication %d in a hub of %d: %d, want %d", tt.replication, tt.hubNodes, got, tt.want)
		}
	}
}

// cluster3 is a valid three-node cluster section for cases to build on.
const cluster3 = "cluster: {peers: [{id: n1, addr: '127.0.0.1:7100'}, {id: n2, addr: '127.0.0.1:7200'}, {id: n3, addr: '127.0.0.1:7300'}]}\n"

// clusterHubs has a hub on every peer and one on two of them.
const clusterHubs = "hubs: [{name: tangier, jurisdiction: MA}, {name: dakar, jurisdiction: SN, nodes: [n1, n2]}]\n"

func TestClusterErrors(t *testing.T) {
	peers := func(list string) string { return "cluster: {peers: [" + list + "]}\n" + reg + hubs }
	tests := []struct {
		name  string
		yaml  string
		key   string
		value string
		hint  string
	}{
		{"peer without id", peers("{id: n1, addr: 'a:1'}, {addr: 'b:1'}"),
			"cluster.peers[1].id", "", "is empty; give the peer's node.id"},
		{"bad peer id", peers("{id: n1, addr: 'a:1'}, {id: N2, addr: 'b:1'}"),
			"cluster.peers[1].id", "N2", "is not a valid node id; use 1 to 64 of a-z, 0-9"},
		{"repeated peer id", peers("{id: n1, addr: 'a:1'}, {id: n1, addr: 'b:1'}"),
			"cluster.peers[1].id", "n1", "is also the id of cluster.peers[0]"},
		{"peer without address", peers("{id: n1, addr: 'a:1'}, {id: n2}"),
			"cluster.peers[1].addr", "", "is empty; give the host:port"},
		{"peer address without port", peers("{id: n1, addr: 'a:1'}, {id: n2, addr: node2}"),
			"cluster.peers[1].addr", "node2", "write host:port with a host and a non-zero port, such as 10.0.0.2:7100"},
		{"peer address on port 0", peers("{id: n1, addr: 'a:1'}, {id: n2, addr: 'node2:0'}"),
			"cluster.peers[1].addr", "node2:0", "a non-zero port"},
		{"peer address without host", peers("{id: n1, addr: 'a:1'}, {id: n2, addr: ':7200'}"),
			"cluster.peers[1].addr", ":7200", "with a host"},
		{"peer address on every interface", peers("{id: n1, addr: 'a:1'}, {id: n2, addr: '0.0.0.0:7200'}"),
			"cluster.peers[1].addr", "0.0.0.0:7200", "is not an address peers can connect to"},
		{"metadata voter not a peer", "cluster: {peers: [{id: n1, addr: 'a:1'}, {id: n2, addr: 'b:1'}, {id: n3, addr: 'c:1'}], metadata_voters: [n1, n9, n2]}\n" + reg + hubs,
			"cluster.metadata_voters[1]", "n9", "is not among cluster.peers (n1, n2, n3)"},
		{"even metadata voters", "cluster: {peers: [{id: n1, addr: 'a:1'}, {id: n2, addr: 'b:1'}, {id: n3, addr: 'c:1'}], metadata_voters: [n1, n2]}\n" + reg + hubs,
			"cluster.metadata_voters", "n1, n2", "name an odd number (3 or 5)"},
		{"repeated peer address", peers("{id: n1, addr: 'a:1'}, {id: n2, addr: 'b:1'}, {id: n3, addr: 'a:1'}"),
			"cluster.peers[2].addr", "a:1", "is also the address of cluster.peers[0] (n1); give each peer its own address"},
		{"node not a peer", "node: {id: n4}\n" + cluster3 + reg + clusterHubs,
			"node.id", "n4", "is not among cluster.peers (n1, n2, n3); set node.id to this node's id in cluster.peers, or add this node"},
		{"default node not a peer", peers("{id: n2, addr: 'b:1'}, {id: n3, addr: 'c:1'}") + "pipelines: [{name: p}]\n",
			"node.id", "n1", "is not among cluster.peers (n2, n3)"},
		{"bad listen address", "cluster: {listen: localhost, peers: [{id: n1, addr: 'a:1'}]}\n" + reg + hubs,
			"cluster.listen", "localhost", "is not a host:port address; write it as 10.0.0.1:7100"},
		{"listen off", "cluster: {listen: 'off', peers: [{id: n1, addr: 'a:1'}]}\n" + reg + hubs,
			"cluster.listen", "off", "is not a host:port address"},
		{"listen on port 0", "cluster: {listen: ':0', peers: [{id: n1, addr: 'a:1'}]}\n" + reg + hubs,
			"cluster.listen", ":0", "peers dial a fixed port"},
		{"listen on an edge's port", "cluster: {listen: ':7070', peers: [{id: n1, addr: 'a:1'}]}\n" + reg + hubs,
			"cluster.listen", ":7070", "uses the TCP port of listeners.native (127.0.0.1:7070)"},
		{"own address on an edge's port", peers("{id: n1, addr: '127.0.0.1:9092'}"),
			"cluster.listen", "127.0.0.1:9092", "uses the TCP port of listeners.kafka (127.0.0.1:9092); give the cluster transport a port of its own"},
		{"bad advertised address", "cluster: {advertise: ':7100', peers: [{id: n1, addr: 'a:1'}]}\n" + reg + hubs,
			"cluster.advertise", ":7100", "give a host and a non-zero port"},
		{"listen without peers", "cluster: {listen: ':7100'}\n",
			"cluster.listen", ":7100", "is set but cluster.peers is empty; list the cluster's nodes"},
		{"advertise without peers", "cluster: {advertise: 'n1:7100'}\n",
			"cluster.advertise", "n1:7100", "or remove cluster.advertise for dev mode"},

		{"hub nodes in dev mode", "hubs: [{name: h, jurisdiction: '*', nodes: [n1, n2]}]\n",
			"hubs[0].nodes", "[n1, n2]", "needs a cluster section"},
		{"hub node not a peer", cluster3 + reg + "hubs: [{name: tangier, jurisdiction: MA, nodes: [n1, n4]}]\n",
			"hubs[0].nodes[1]", "n4", "is not among cluster.peers (n1, n2, n3); add the node to cluster.peers or remove it from the hub"},
		{"hub node twice", cluster3 + reg + "hubs: [{name: tangier, jurisdiction: MA, nodes: [n1, n2, n1]}]\n",
			"hubs[0].nodes[2]", "n1", "is also hubs[0].nodes[0]; list each node once"},

		{"replication too large", cluster3 + reg + clusterHubs + "pipelines: [{name: p, replication: 9}]\n",
			"pipelines[0].replication", "9", "is out of range; use 0 (the default: 3, or every node of a smaller hub) or 1 to 7"},
		{"negative replication", cluster3 + reg + clusterHubs + "pipelines: [{name: p, replication: -1}]\n",
			"pipelines[0].replication", "-1", "is out of range"},
		{"replication in dev mode", "pipelines: [{name: p, replication: 3}]\n",
			"pipelines[0].replication", "3", "needs a cluster: without cluster.peers this process is the only node; use 0 or 1"},
		{"replication over a small hub", cluster3 + reg + clusterHubs + "pipelines: [{name: payments, replication: 3}]\n",
			"pipelines[0].replication", "3", "is more than hub dakar's 2 nodes (n1, n2); pipeline payments has partitions in every hub, so lower the replication or add nodes to the hub"},
		{"replication over the peers", peers("{id: n1, addr: 'a:1'}") + "pipelines: [{name: p, replication: 2}]\n",
			"pipelines[0].replication", "2", "is more than hub tangier's 1 node (n1) and hub dakar's 1 node (n1); pipeline p has partitions in every hub, so lower the replication or add nodes to those hubs"},
		{"replication over a hub that denies the pipeline", cluster3 + reg +
			"hubs: [{name: tangier, jurisdiction: MA}, {name: lab, jurisdiction: SN, nodes: [n3], policy: {deny_pipelines: [p]}}]\n" +
			"pipelines: [{name: p, replication: 3}]\n",
			"pipelines[0].replication", "3", "is more than hub lab's 1 node (n3); pipeline p"},
		// A hub whose nodes are wrong is not measured against replications.
		{"replication over a hub with a bad node", cluster3 + reg + "hubs: [{name: tangier, jurisdiction: MA, nodes: [n1, n9]}]\n" +
			"pipelines: [{name: p, replication: 3}]\n",
			"hubs[0].nodes[1]", "n9", "is not among cluster.peers"},
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
			if tt.key != "node.id" && !strings.Contains(msg, "(sense.yaml line ") {
				t.Errorf("message %q does not say where the value came from", msg)
			}
		})
	}
}

func TestClusterAccepts(t *testing.T) {
	tests := []struct{ name, yaml string }{
		{"replication 1 in dev mode", "pipelines: [{name: p, replication: 1}]\n"},
		{"even replication", cluster3 + reg + clusterHubs + "pipelines: [{name: p, replication: 2}]\n"},
		{"replication 3 where every hub has 3", cluster3 + reg + "hubs: [{name: tangier, jurisdiction: MA}]\npipelines: [{name: p, replication: 3}]\n"},
		{"default replication over a small hub", cluster3 + reg + clusterHubs + "pipelines: [{name: p}]\n"},
		{"hub on one node", cluster3 + reg + "hubs: [{name: tangier, jurisdiction: MA, nodes: [n2]}]\n"},
		{"empty nodes in dev mode", "hubs: [{name: h, jurisdiction: '*', nodes: []}]\n"},
		{"empty cluster section", "cluster: {listen: '', advertise: '', peers: []}\n"},
		{"listen on every interface", "cluster: {listen: '0.0.0.0:7100', peers: [{id: n1, addr: 'n1.example.com:7100'}]}\n" + reg + "hubs: [{name: tangier, jurisdiction: MA}]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse("", []byte(tt.yaml)); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestClusterEnv(t *testing.T) {
	path := writeFile(t, reg+clusterHubs+
		"cluster: {peers: [{id: n1, addr: 'old:1'}, {id: n2, addr: 'old:2'}, {id: n3, addr: 'old:3'}, {id: n4, addr: 'old:4'}]}\n")
	env := []string{
		"SENSE_CONFIG=" + path,
		"SENSE_NODE_ID=n2",
		"SENSE_CLUSTER_LISTEN=0.0.0.0:7200",
		"SENSE_CLUSTER_ADVERTISE=n2.example.com:7200",
		"SENSE_CLUSTER_PEERS=n1=127.0.0.1:7100, n2=127.0.0.1:7200 ,n3 = 127.0.0.1:7300",
	}
	c, err := Load(nil, env)
	if err != nil {
		t.Fatal(err)
	}
	want := Cluster{Listen: "0.0.0.0:7200", Advertise: "n2.example.com:7200", Peers: []Peer{
		{ID: "n1", Addr: "127.0.0.1:7100"}, {ID: "n2", Addr: "127.0.0.1:7200"}, {ID: "n3", Addr: "127.0.0.1:7300"},
	}}
	if !reflect.DeepEqual(c.Cluster, want) {
		t.Errorf("Cluster = %+v, want %+v", c.Cluster, want)
	}
	sources := []struct{ key, want string }{
		{"cluster.peers", "env SENSE_CLUSTER_PEERS"},
		{"cluster.peers[2]", "env SENSE_CLUSTER_PEERS"},
		{"cluster.peers[2].addr", "env SENSE_CLUSTER_PEERS"},
		{"cluster.peers[3].addr", ""}, // the file's fourth peer is gone
		{"cluster.listen", "env SENSE_CLUSTER_LISTEN"},
	}
	for _, s := range sources {
		if got := c.Source(s.key); got != s.want {
			t.Errorf("Source(%s) = %q, want %q", s.key, got, s.want)
		}
	}
	if got := (Peer{ID: "n1", Addr: "127.0.0.1:7100"}).String(); got != "n1=127.0.0.1:7100" {
		t.Errorf("Peer.String() = %q", got)
	}

	// The variable alone leaves dev mode; its own address is the default listen.
	c, err = Load(nil, []string{"SENSE_CONFIG=" + writeFile(t, reg+hubs), "SENSE_CLUSTER_PEERS=n1=10.0.0.1:7100"})
	if err != nil {
		t.Fatal(err)
	}
	if c.DevMode() || c.Cluster.Listen != "10.0.0.1:7100" || !slices.Equal(c.HubNodes("tangier"), []string{"n1"}) {
		t.Errorf("dev mode %v, listen %q, tangier on %v", c.DevMode(), c.Cluster.Listen, c.HubNodes("tangier"))
	}

	errTests := []struct {
		name    string
		environ []string
		want    []string
	}{
		{"entry without id", []string{"SENSE_CLUSTER_PEERS=n1=127.0.0.1:7100,127.0.0.1:7200"},
			[]string{`config: cluster.peers[1] "127.0.0.1:7200" is not a peer; write each peer as id=host:port, such as n1=10.0.0.1:7100,n2=10.0.0.2:7100 (env SENSE_CLUSTER_PEERS)`}},
		{"empty entry", []string{"SENSE_CLUSTER_PEERS=n1=127.0.0.1:7100,"},
			[]string{`config: cluster.peers[1] is not a peer`}},
		{"entry without address", []string{"SENSE_CLUSTER_PEERS=n1=127.0.0.1:7100,n2="},
			[]string{`config: cluster.peers[1] "n2=" is not a peer`}},
		{"bad address", []string{"SENSE_CLUSTER_PEERS=n1=127.0.0.1:7100,n2=node2"},
			[]string{`config: cluster.peers[1].addr "node2" is not an address peers can connect to`, "(env SENSE_CLUSTER_PEERS)"}},
		{"bad listen", []string{"SENSE_CLUSTER_PEERS=n1=127.0.0.1:7100", "SENSE_CLUSTER_LISTEN=7100"},
			[]string{`config: cluster.listen "7100" is not a host:port address`, "(env SENSE_CLUSTER_LISTEN)"}},
		{"node not among the peers", []string{"SENSE_CLUSTER_PEERS=n2=127.0.0.1:7200", "SENSE_NODE_ID=n1"},
			[]string{`config: node.id "n1" is not among cluster.peers (n2)`, "(env SENSE_NODE_ID)"}},
		{"misspelt", []string{"SENSE_CLUSTER_PEER=n1=127.0.0.1:7100"},
			[]string{"config: SENSE_CLUSTER_PEER is not a known setting; did you mean SENSE_CLUSTER_PEERS?"}},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(nil, append(tt.environ, "SENSE_CONFIG="+writeFile(t, reg+hubs)))
			if err == nil {
				t.Fatalf("Load succeeded: %+v", c)
			}
			if errs := fieldErrors(t, err); len(errs) != 1 {
				t.Errorf("got %d errors, want 1:\n%v", len(errs), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

// TestClusterErrorsDoNotCascade checks that one mistake is reported once.
func TestClusterErrorsDoNotCascade(t *testing.T) {
	tests := []struct{ name, yaml, key string }{
		{"bad node id", "node: {id: N1}\n" + cluster3 + reg + clusterHubs, "node.id"},
		{"own peer without address", "cluster: {peers: [{id: n1}, {id: n2, addr: 'b:1'}]}\n" + reg + hubs, "cluster.peers[0].addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("", []byte(tt.yaml))
			if errs := fieldErrors(t, err); len(errs) != 1 || errs[0].Key != tt.key {
				t.Errorf("got %v; want one error on %s", err, tt.key)
			}
		})
	}
}

func TestMetadataVoterIDs(t *testing.T) {
	var c Cluster
	for i := range 7 {
		c.Peers = append(c.Peers, Peer{ID: string(rune('a' + i))})
		want := []string{}
		for j := range min(i+1, 5) {
			want = append(want, string(rune('a'+j)))
		}
		if i+1 > 5 {
			want = want[:3]
		}
		if got := c.MetadataVoterIDs(); !slices.Equal(got, want) {
			t.Errorf("%d peers: voters %v, want %v", i+1, got, want)
		}
	}
	c.MetadataVoters = []string{"b", "d", "f"}
	if got := c.MetadataVoterIDs(); !slices.Equal(got, c.MetadataVoters) {
		t.Errorf("voters %v, want the configured %v", got, c.MetadataVoters)
	}
}
