package node

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/router"
	"github.com/sensehq/sense/vfs"
)

// MaxPartitions bounds PipelineSpec.Partitions (per hub and lane) and the
// partition count of an explicit layout.
const MaxPartitions = 1024

// PipelineSpec is a pipeline as the catalog records it. A pipeline has one
// of two layouts (router's package doc):
//
//   - the standard one, Partitions buffers per hub and lane, numbered
//     (hub*3 + lane)*Partitions + index over Hubs, the hub order it was laid
//     out with (hubs may only be added after it; a new hub gets its buffers
//     at the end);
//   - an explicit one, Slots: partition i lives in Slots[i]. Any count;
//     partitions can be added (AddPartitions), never removed or moved.
type PipelineSpec struct {
	Name                string        `json:"name"`
	Partitions          int           `json:"partitions"` // per hub per lane; 0 with Slots
	Slots               []Slot        `json:"slots,omitempty"`
	Retention           time.Duration `json:"retention"`
	RetentionBytes      int64         `json:"retention_bytes"`
	DefaultPriority     string        `json:"default_priority"`
	DefaultJurisdiction string        `json:"default_jurisdiction"`
	Hubs                []string      `json:"hubs"`
	Created             time.Time     `json:"created"`
	// Declared is true when the pipeline comes from the config file.
	Declared bool `json:"declared"`
}

// Slot is where one partition of an explicit layout lives.
type Slot struct {
	Hub  string         `json:"hub"`
	Lane event.Priority `json:"lane"`
}

// NumPartitions returns the pipeline's partition count.
func (p PipelineSpec) NumPartitions() int {
	if p.Slots != nil {
		return len(p.Slots)
	}
	return p.Partitions * router.Lanes * len(p.Hubs)
}

// Layout returns where each partition lives, in partition order, whatever
// the pipeline's layout kind.
func (p PipelineSpec) Layout() []Slot { return p.slots() }

// slots returns the pipeline's layout as explicit slots.
func (p PipelineSpec) slots() []Slot {
	if p.Slots != nil {
		return slices.Clone(p.Slots)
	}
	var out []Slot
	for _, sl := range router.StandardLayout(len(p.Hubs), p.Partitions) {
		out = append(out, Slot{Hub: p.Hubs[sl.Hub], Lane: sl.Lane})
	}
	return out
}

// Spread returns layout with n more partitions, each placed in the (hub,
// lane) of hubs x lanes that holds the fewest partitions so far, the first
// such in lane order, then hub order: so partitions reach every hub's
// first lane before any hub gets a second, which keeps each jurisdiction
// reachable with few partitions.
func Spread(layout []Slot, hubs []string, lanes []event.Priority, n int) []Slot {
	counts := map[Slot]int{}
	for _, sl := range layout {
		counts[sl]++
	}
	for range n {
		best, bestCount := Slot{}, -1
		for _, lane := range lanes {
			for _, h := range hubs {
				sl := Slot{Hub: h, Lane: lane}
				if c := counts[sl]; bestCount < 0 || c < bestCount {
					best, bestCount = sl, c
				}
			}
		}
		layout = append(layout, best)
		counts[best]++
	}
	return layout
}

// catalogVersion is the catalog format this version writes. Version 1 (no
// "version" field) had standard layouts only; version 2 adds Slots. A
// version-1 catalog is rewritten as version 2 on open.
const catalogVersion = 2

// catalog is the durable list of pipelines, in data_dir/pipelines.json.
type catalog struct {
	fs        vfs.FS
	path      string
	Version   int            `json:"version"`
	Pipelines []PipelineSpec `json:"pipelines"`
	// migrated says the catalog was read in an older format and must be
	// saved.
	migrated bool
}

func loadCatalog(fs vfs.FS, dataDir string) (*catalog, error) {
	c := &catalog{fs: fs, path: filepath.Join(dataDir, "pipelines.json"), Version: catalogVersion}
	raw, err := vfs.ReadFile(fs, c.path)
	if vfs.IsNotExist(err) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: read pipeline catalog: %w", err)
	}
	c.Version = 0
	if err := json.Unmarshal(raw, c); err != nil {
		return nil, fmt.Errorf("node: pipeline catalog %s is damaged (%v); restore it from a backup", c.path, err)
	}
	switch {
	case c.Version == 0 || c.Version == 1:
		c.Version, c.migrated = catalogVersion, true
	case c.Version > catalogVersion:
		return nil, fmt.Errorf("node: pipeline catalog %s has format version %d, newer than this Sense's %d; run the version that wrote it", c.path, c.Version, catalogVersion)
	}
	return c, nil
}

// save writes the catalog durably: temporary file, fsync, rename, fsync of
// the directory.
func (c *catalog) save() error {
	raw, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := vfs.WriteFileAtomic(c.fs, c.path, raw); err != nil {
		return fmt.Errorf("node: write pipeline catalog: %w", err)
	}
	c.migrated = false
	return nil
}

func (c *catalog) find(name string) *PipelineSpec {
	for i := range c.Pipelines {
		if c.Pipelines[i].Name == name {
			return &c.Pipelines[i]
		}
	}
	return nil
}
