package node

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sensehq/sense/vfs"
)

// MaxPartitions bounds PipelineSpec.Partitions.
const MaxPartitions = 1024

// PipelineSpec is a pipeline as the catalog records it. Partition numbers
// depend on the hub order, so the catalog keeps the order the pipeline was
// laid out with; hubs may only be added after it.
type PipelineSpec struct {
	Name                string        `json:"name"`
	Partitions          int           `json:"partitions"` // per hub per lane
	Retention           time.Duration `json:"retention"`
	RetentionBytes      int64         `json:"retention_bytes"`
	DefaultPriority     string        `json:"default_priority"`
	DefaultJurisdiction string        `json:"default_jurisdiction"`
	Hubs                []string      `json:"hubs"`
	Created             time.Time     `json:"created"`
	// Declared is true when the pipeline comes from the config file.
	Declared bool `json:"declared"`
}

// catalog is the durable list of pipelines, in data_dir/pipelines.json.
type catalog struct {
	path      string
	Pipelines []PipelineSpec `json:"pipelines"`
}

func loadCatalog(dataDir string) (*catalog, error) {
	c := &catalog{path: filepath.Join(dataDir, "pipelines.json")}
	raw, err := os.ReadFile(c.path)
	if os.IsNotExist(err) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: read pipeline catalog: %w", err)
	}
	if err := json.Unmarshal(raw, c); err != nil {
		return nil, fmt.Errorf("node: pipeline catalog %s is damaged (%v); restore it from a backup", c.path, err)
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
	tmp := c.path + ".tmp"
	f, err := vfs.Default.Create(tmp)
	if err != nil {
		return fmt.Errorf("node: write pipeline catalog: %w", err)
	}
	if _, err := f.WriteAt(raw, 0); err != nil {
		f.Close()
		return fmt.Errorf("node: write pipeline catalog: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("node: sync pipeline catalog: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, c.path); err != nil {
		return fmt.Errorf("node: write pipeline catalog: %w", err)
	}
	return vfs.Default.SyncDir(filepath.Dir(c.path))
}

func (c *catalog) find(name string) *PipelineSpec {
	for i := range c.Pipelines {
		if c.Pipelines[i].Name == name {
			return &c.Pipelines[i]
		}
	}
	return nil
}
