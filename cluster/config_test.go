package cluster

import (
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	return Config{
		Self:    "n1",
		Peers:   []Peer{{ID: "n1", Addr: "127.0.0.1:7100"}, {ID: "n2", Addr: "127.0.0.1:7200"}},
		Handler: &recorder{},
	}
}

// TestConfigDefaults: the zero value of every optional field gets its
// default; Listen comes from this node's peer entry.
func TestConfigDefaults(t *testing.T) {
	c := validConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:7100" || c.ClusterName != "sense" || c.Logger == nil ||
		c.MaxQueueBytes != 64<<20 || c.MaxFrameBytes != 32<<20 ||
		c.DialTimeout != time.Second || c.WriteTimeout != 5*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	small := validConfig()
	small.MaxQueueBytes = 1000
	if err := small.Validate(); err != nil {
		t.Fatal(err)
	}
	if small.MaxFrameBytes != 996 {
		t.Errorf("MaxFrameBytes %d with a 1000-byte queue, want 996", small.MaxFrameBytes)
	}
}

// TestConfigErrors: each bad value is refused by a message naming the
// field and the value.
func TestConfigErrors(t *testing.T) {
	long := strings.Repeat("x", 256)
	cases := []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Handler = nil }, "Handler is nil"},
		{func(c *Config) { c.Self = "" }, "Self is empty"},
		{func(c *Config) { c.Self = long }, "Self \"xxx"},
		{func(c *Config) { c.Self = "n9" }, `Self "n9" is not among Peers`},
		{func(c *Config) { c.Peers[1].ID = "" }, "Peers[1].ID is empty"},
		{func(c *Config) { c.Peers[1].ID = "n1" }, `Peers[1].ID "n1" is also the id of Peers[0]`},
		{func(c *Config) { c.Peers[1].Addr = "nowhere" }, `Peers[1].Addr "nowhere" (peer n2) is not host:port`},
		{func(c *Config) { c.Peers[0].Addr = "" }, "Listen is empty and so is Peers[0].Addr"},
		{func(c *Config) { c.Listen = "7100" }, `Listen "7100" is not host:port`},
		{func(c *Config) { c.ClusterName = long }, "ClusterName \"xxx"},
		{func(c *Config) { c.MaxQueueBytes = -1 }, "MaxQueueBytes -1 cannot hold a frame"},
		{func(c *Config) { c.MaxQueueBytes = 4 }, "MaxQueueBytes 4 cannot hold a frame"},
		{func(c *Config) { c.MaxFrameBytes = -5 }, "MaxFrameBytes -5 is out of range"},
		{func(c *Config) { c.MaxFrameBytes = 2 << 30 }, "MaxFrameBytes 2147483648 is out of range"},
		{func(c *Config) { c.MaxQueueBytes, c.MaxFrameBytes = 100, 97 }, "MaxFrameBytes 97 does not fit in MaxQueueBytes 100"},
		{func(c *Config) { c.DialTimeout = -time.Second }, "DialTimeout -1s is negative"},
		{func(c *Config) { c.WriteTimeout = -time.Second }, "WriteTimeout -1s is negative"},
	}
	for _, tc := range cases {
		c := validConfig()
		tc.mod(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "cluster: ") {
			t.Errorf("want an error containing %q, got %v", tc.want, err)
		}
		if _, err2 := New(c); err2 == nil {
			t.Errorf("New accepted what Validate refused (%q)", tc.want)
		}
	}
	ok := validConfig()
	ok.MaxQueueBytes, ok.MaxFrameBytes = 100, 96
	if err := ok.Validate(); err != nil {
		t.Errorf("a frame that just fits: %v", err)
	}
}

// TestNewCopiesPeers: changing the caller's slice after New changes
// nothing.
func TestNewCopiesPeers(t *testing.T) {
	c := validConfig()
	tr, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	c.Peers[1].Addr = "127.0.0.1:1"
	if s := tr.Stats(); len(s) != 1 || s[0].ID != "n2" || s[0].Addr != "127.0.0.1:7200" {
		t.Errorf("stats %+v", s)
	}
	tr.Close()
}
