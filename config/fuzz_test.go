package config

import (
	"reflect"
	"testing"
)

// FuzzParse checks that no file makes Parse panic, and that whatever Parse
// accepts, Marshal writes back to a file Parse reads to the same Config.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"", fullYAML, "node: {id: n1}\nnode: {id: n2}\n", "hubs: tangier\n", "a: &x {b: *x}\n",
		"base: &b {partitions: 3}\npipelines: [{<<: *b, name: p}]\n",
		"pipelines: [{<<: [{partitions: 2}, {retention: 1d}], name: p}]\n",
		"groups: {E: [MA]}\njurisdictions: [MA]\n", "? [a]\n: b\n", "--- 1\n--- 2\n", "router: {shed_low_at: .nan}\n",
		clusterYAML, cluster3 + reg + clusterHubs + "pipelines: [{name: p, replication: 2}]\n",
		"cluster: {peers: ['n1:7100']}\n", "cluster: {peers: [{id: n1, addr: &a 'x:1'}, {id: n2, addr: *a}]}\n",
		"node: {id: n2}\ncluster: {peers: [{id: n2, addr: '[::1]:7100'}]}\nhubs: [{name: h, jurisdiction: '*', nodes: [n2]}]\n",
		"hubs: [{name: local, jurisdiction: '*', nodes: [n1]}]\npipelines: [{name: p, replication: 1}]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("", data)
		if err != nil {
			fieldErrors(t, err)
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := Parse("", out)
		if err != nil {
			t.Fatalf("Parse(Marshal()) failed: %v\ninput:\n%s\nmarshalled:\n%s", err, data, out)
		}
		back.sources, c.sources = nil, nil
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip changed the config\ninput:\n%s\nmarshalled:\n%s", data, out)
		}
	})
}
