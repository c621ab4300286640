package node

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sensehq/sense/batch"
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
	// MaxMessageBytes is the largest record batch a Kafka producer may
	// append (Kafka's max.message.bytes); 0 is the node's event limit
	// (router.max_event_bytes).
	MaxMessageBytes int64 `json:"max_message_bytes,omitempty"`
	// CleanupPolicy is Kafka's cleanup.policy: "" or "delete" (sealed
	// segments go by retention), "compact" (each buffer keeps the latest
	// record of each key, and retention deletes nothing), "compact,delete"
	// (both). See docs/storage.md, "Compaction".
	CleanupPolicy string `json:"cleanup_policy,omitempty"`
	// DeleteRetention is how long a tombstone that is the latest record
	// of its key stays (delete.retention.ms); 0 is 24 hours.
	DeleteRetention time.Duration `json:"delete_retention,omitempty"`
	// MinCompactionLag keeps records from compaction until they are this
	// old (min.compaction.lag.ms, at segment granularity).
	MinCompactionLag time.Duration `json:"min_compaction_lag,omitempty"`
	// MinCleanableDirtyRatio: a buffer is compacted once the share of its
	// sealed bytes not compacted yet reaches it (min.cleanable.dirty.ratio);
	// 0 is 0.5.
	MinCleanableDirtyRatio float64   `json:"min_cleanable_dirty_ratio,omitempty"`
	Created                time.Time `json:"created"`
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

// The catalog is an append-only log of changes, <data_dir>/pipelines.log
// (docs/storage.md, "The pipeline catalog"):
//
//	header  [8]byte "SENSECAT", uint32 format version, uint32 CRC-32C of the 12 bytes before
//	record  uint32 body length, uint32 CRC-32C of the body, body
//	body    byte kind, then for kindPut the pipeline's spec as JSON, for
//	        kindDelete the pipeline's name
//
// A creation, a deletion or a change of layout or settings appends one
// record and fdatasyncs the file once: the cost of a change does not grow
// with the number of pipelines. When the records outnumber the live pipelines
// (twice over, plus compactSlack), the catalog is rewritten whole:
// temporary file, fdatasync, rename, directory sync. Open replays the
// records; a record cut short or failing its CRC at the end of the file is
// the torn tail of a change that was never acknowledged, and is cut.
// Damage before the end is reported, never skipped.
const (
	catalogName    = "pipelines.log"
	catalogMagic   = "SENSECAT"
	catalogHeader  = 16
	recordOverhead = 8
	// catalogVersion is the format this version writes: 3, the log.
	// Versions 1 and 2 were pipelines.json (legacyName), a JSON document
	// rewritten whole on every change; version 1 had standard layouts
	// only. Both are read and migrated on open.
	catalogVersion = 3
	legacyName     = "pipelines.json"
	legacyVersion  = 2
)

// compactSlack is how many records past twice the live pipelines the
// catalog holds before it is compacted (a variable so that tests compact
// often).
var compactSlack = 1024

// Record kinds.
const (
	kindPut    byte = 1 // create or replace a pipeline: its spec
	kindDelete byte = 2 // delete a pipeline: its name
)

var (
	// ErrCatalogCorrupt is matched by Open's error for a catalog whose
	// records are damaged before its end.
	ErrCatalogCorrupt = errors.New("node: pipeline catalog is damaged")
)

// catalog is the durable list of pipelines. It is not safe for concurrent
// use: the node changes it holding its lock.
type catalog struct {
	fs   vfs.FS
	log  *slog.Logger
	dir  string
	path string

	// Pipelines in creation order; index maps a name to its position,
	// fold a lower-cased name to the names that lower-case to it.
	Pipelines []PipelineSpec
	index     map[string]int
	fold      map[string][]string

	f       vfs.File // open for appends; nil before the first write or after a failure
	size    int64    // end of the last whole record
	records int      // records in the file
	// broken is a failed append's error: the file's state past size is
	// unknown and its fsync is never retried, so the next change rewrites
	// the catalog into a new file.
	broken error
	// legacy: pipelines.json exists and is removed once the log is saved.
	legacy bool
	// migrated says the catalog was read in an older format and must be
	// saved.
	migrated bool
}

func loadCatalog(fs vfs.FS, dataDir string, log *slog.Logger) (*catalog, error) {
	c := &catalog{fs: fs, log: log, dir: dataDir, path: filepath.Join(dataDir, catalogName), index: map[string]int{}, fold: map[string][]string{}}
	if err := fs.Remove(c.path + ".tmp"); err != nil && !vfs.IsNotExist(err) {
		return nil, fmt.Errorf("node: remove the unfinished catalog rewrite %s.tmp: %w", c.path, err)
	}
	raw, err := vfs.ReadFile(fs, c.path)
	switch {
	case vfs.IsNotExist(err):
		return c, c.loadLegacy()
	case err != nil:
		return nil, fmt.Errorf("node: read pipeline catalog: %w", err)
	}
	specs, end, records, err := decodeCatalog(raw)
	if err != nil {
		return nil, fmt.Errorf("node: pipeline catalog %s: %w", c.path, err)
	}
	for _, s := range specs {
		c.add(s)
	}
	c.size, c.records = end, records
	if names, err := fs.List(dataDir); err == nil && slices.Contains(names, legacyName) {
		// A migration cut before it removed the old file: the log
		// replaced it.
		legacy := filepath.Join(dataDir, legacyName)
		if err := fs.Remove(legacy); err != nil {
			return nil, fmt.Errorf("node: remove the old pipeline catalog %s: %w", legacy, err)
		}
		if err := fs.SyncDir(dataDir); err != nil {
			return nil, fmt.Errorf("node: remove the old pipeline catalog %s: %w", legacy, err)
		}
	}
	if end < int64(len(raw)) {
		// The torn tail of a change that was never acknowledged. Cut it
		// durably before anything is appended after it.
		f, err := fs.OpenRW(c.path)
		if err != nil {
			return nil, fmt.Errorf("node: open pipeline catalog: %w", err)
		}
		if err := f.Truncate(end); err != nil {
			f.Close()
			return nil, fmt.Errorf("node: cut the torn tail of the pipeline catalog %s at %d: %w", c.path, end, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("node: cut the torn tail of the pipeline catalog %s: fdatasync: %w", c.path, err)
		}
		c.f = f
	}
	return c, nil
}

// loadLegacy reads pipelines.json, the catalog of versions 1 and 2, if it
// exists; Open then saves it as the log and removes it.
func (c *catalog) loadLegacy() error {
	path := filepath.Join(c.dir, legacyName)
	raw, err := vfs.ReadFile(c.fs, path)
	if vfs.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("node: read pipeline catalog: %w", err)
	}
	var doc struct {
		Version   int            `json:"version"`
		Pipelines []PipelineSpec `json:"pipelines"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("node: pipeline catalog %s is damaged (%v); restore it from a backup", path, err)
	}
	if doc.Version > legacyVersion {
		return fmt.Errorf("node: pipeline catalog %s has format version %d, newer than this Sense's %d; run the version that wrote it", path, doc.Version, catalogVersion)
	}
	for _, s := range doc.Pipelines {
		if c.find(s.Name) != nil {
			return fmt.Errorf("node: pipeline catalog %s lists pipeline %q twice; restore it from a backup", path, s.Name)
		}
		c.add(s)
	}
	c.legacy, c.migrated = true, true
	return nil
}

// decodeCatalog replays a catalog log. It returns the pipelines in creation
// order, the end of the last whole record (the length of raw unless a torn
// tail follows) and the number of records.
func decodeCatalog(raw []byte) ([]PipelineSpec, int64, int, error) {
	if len(raw) < catalogHeader || string(raw[:8]) != catalogMagic {
		return nil, 0, 0, fmt.Errorf("%w: no catalog header", ErrCatalogCorrupt)
	}
	if binary.BigEndian.Uint32(raw[12:16]) != batch.Checksum(raw[:12]) {
		return nil, 0, 0, fmt.Errorf("%w: header CRC mismatch", ErrCatalogCorrupt)
	}
	if v := binary.BigEndian.Uint32(raw[8:12]); v != catalogVersion {
		return nil, 0, 0, fmt.Errorf("format version %d; this Sense reads %d: run the version that wrote it", v, catalogVersion)
	}
	var specs []PipelineSpec
	index := map[string]int{}
	r := recordReader{b: raw, pos: catalogHeader}
	records := 0
	for {
		body, ok := r.next()
		if !ok {
			break
		}
		records++
		kind, rest := body[0], body[1:]
		switch kind {
		case kindPut:
			var s PipelineSpec
			if err := json.Unmarshal(rest, &s); err != nil {
				return nil, 0, 0, fmt.Errorf("%w: record at byte %d: %v", ErrCatalogCorrupt, r.last, err)
			}
			if err := event.ValidatePipelineName(s.Name); err != nil {
				return nil, 0, 0, fmt.Errorf("%w: record at byte %d: %v", ErrCatalogCorrupt, r.last, err)
			}
			if i, ok := index[s.Name]; ok {
				specs[i] = s
			} else {
				index[s.Name] = len(specs)
				specs = append(specs, s)
			}
		case kindDelete:
			i, ok := index[string(rest)]
			if !ok {
				continue // nothing to delete: harmless
			}
			specs = slices.Delete(specs, i, i+1)
			delete(index, string(rest))
			for j := i; j < len(specs); j++ {
				index[specs[j].Name] = j
			}
		default:
			return nil, 0, 0, fmt.Errorf("%w: record at byte %d has kind %d", ErrCatalogCorrupt, r.last, kind)
		}
	}
	if r.err != nil {
		return nil, 0, 0, r.err
	}
	return specs, int64(r.pos), records, nil
}

// recordReader walks the records of a catalog log. Its error is sticky:
// next returns false from the first bad record on; a torn tail ends the
// walk without an error, damage before the end sets err.
type recordReader struct {
	b    []byte
	pos  int // start of the next record: the end of the last good one
	last int // start of the record next returned
	err  error
}

func (r *recordReader) next() ([]byte, bool) {
	if r.err != nil || r.pos == len(r.b) {
		return nil, false
	}
	rest := r.b[r.pos:]
	if len(rest) < recordOverhead {
		return nil, false // torn: the header itself is cut short
	}
	n := int64(binary.BigEndian.Uint32(rest))
	sum := binary.BigEndian.Uint32(rest[4:])
	if n == 0 || n > int64(len(rest)-recordOverhead) || batch.Checksum(rest[recordOverhead:recordOverhead+n]) != sum {
		// A torn tail (a change cut short by a crash, never acknowledged)
		// unless a whole record follows: then it is damage.
		if validRecordAfter(r.b, r.pos) {
			r.err = fmt.Errorf("%w: the record at byte %d is damaged and whole records follow it; restore the catalog from a backup", ErrCatalogCorrupt, r.pos)
		}
		return nil, false
	}
	r.last = r.pos
	r.pos += recordOverhead + int(n)
	return rest[recordOverhead : recordOverhead+n], true
}

// validRecordAfter reports whether a whole record of a known kind starts
// anywhere in b after pos: evidence that damage at pos is not a torn
// tail.
func validRecordAfter(b []byte, pos int) bool {
	for p := pos + 1; p+recordOverhead < len(b); p++ {
		n := int64(binary.BigEndian.Uint32(b[p:]))
		if n == 0 || n > int64(len(b)-p-recordOverhead) {
			continue
		}
		body := b[p+recordOverhead : p+recordOverhead+int(n)]
		if (body[0] == kindPut || body[0] == kindDelete) && batch.Checksum(body) == binary.BigEndian.Uint32(b[p+4:]) {
			return true
		}
	}
	return false
}

// appendRecord appends one record of kind with body to dst.
func appendRecord(dst []byte, kind byte, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)+1))
	at := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, 0)
	dst = append(dst, kind)
	dst = append(dst, body...)
	binary.BigEndian.PutUint32(dst[at:], batch.Checksum(dst[at+4:]))
	return dst
}

func putRecord(dst []byte, s PipelineSpec) ([]byte, error) {
	body, err := json.Marshal(s)
	if err != nil {
		return dst, fmt.Errorf("node: encode pipeline %q: %w", s.Name, err)
	}
	return appendRecord(dst, kindPut, body), nil
}

func (c *catalog) add(s PipelineSpec) {
	c.index[s.Name] = len(c.Pipelines)
	c.Pipelines = append(c.Pipelines, s)
	lower := strings.ToLower(s.Name)
	c.fold[lower] = append(c.fold[lower], s.Name)
}

// forget removes name from the indexes; the pipeline at position i of
// Pipelines has been removed.
func (c *catalog) forget(name string, i int) {
	delete(c.index, name)
	for j := i; j < len(c.Pipelines); j++ {
		c.index[c.Pipelines[j].Name] = j
	}
	lower := strings.ToLower(name)
	if names := slices.DeleteFunc(c.fold[lower], func(n string) bool { return n == name }); len(names) > 0 {
		c.fold[lower] = names
	} else {
		delete(c.fold, lower)
	}
}

// equalFold returns a pipeline whose name equals name but for case.
func (c *catalog) equalFold(name string) (string, bool) {
	for _, other := range c.fold[strings.ToLower(name)] {
		if other != name {
			return other, true
		}
	}
	return "", false
}

func (c *catalog) find(name string) *PipelineSpec {
	if i, ok := c.index[name]; ok {
		return &c.Pipelines[i]
	}
	return nil
}

// create adds a pipeline durably: one record, one fdatasync. On an error
// the catalog does not hold it.
func (c *catalog) create(s PipelineSpec) error {
	c.add(s)
	if err := c.put(s); err != nil {
		c.Pipelines = c.Pipelines[:len(c.Pipelines)-1]
		c.forget(s.Name, len(c.Pipelines))
		return err
	}
	return nil
}

// update replaces the spec of a pipeline the catalog holds durably. On an
// error the catalog keeps the old spec.
func (c *catalog) update(s PipelineSpec) error {
	p := c.find(s.Name)
	old := *p
	*p = s
	if err := c.put(s); err != nil {
		*c.find(s.Name) = old
		return err
	}
	return nil
}

// remove deletes a pipeline durably. On an error the catalog still holds
// it.
func (c *catalog) remove(name string) error {
	i, ok := c.index[name]
	if !ok {
		return nil
	}
	old := c.Pipelines
	c.Pipelines = slices.Delete(slices.Clone(old), i, i+1)
	if err := c.append(appendRecord(nil, kindDelete, []byte(name))); err != nil {
		c.Pipelines = old
		return err
	}
	c.forget(name, i)
	c.maybeCompact()
	return nil
}

// put records s, the catalog's spec of s.Name now.
func (c *catalog) put(s PipelineSpec) error {
	rec, err := putRecord(nil, s)
	if err != nil {
		return err
	}
	if err := c.append(rec); err != nil {
		return err
	}
	c.maybeCompact()
	return nil
}

// append writes rec at the end of the log and fdatasyncs it. A catalog
// with no file yet, or whose last append failed, is rewritten whole
// instead (the in-memory catalog already holds the change).
func (c *catalog) append(rec []byte) error {
	if c.f == nil && c.broken == nil && c.size > 0 {
		f, err := c.fs.OpenRW(c.path)
		if err != nil {
			return fmt.Errorf("node: open pipeline catalog: %w", err)
		}
		c.f = f
	}
	if c.f == nil {
		return c.save()
	}
	if _, err := c.f.WriteAt(rec, c.size); err != nil {
		return c.failAppend(fmt.Errorf("node: write pipeline catalog %s: %w", c.path, err))
	}
	if err := c.f.Sync(); err != nil {
		return c.failAppend(fmt.Errorf("node: write pipeline catalog %s: fdatasync: %w", c.path, err))
	}
	c.size += int64(len(rec))
	c.records++
	return nil
}

// failAppend gives up the file after a failed append: the change is not
// acknowledged (a crash may still surface it: its outcome is unknown),
// the file is cut back to its last acknowledged record so this process
// does not read it back, and the next change rewrites the catalog into a
// new file rather than retry the fsync.
func (c *catalog) failAppend(err error) error {
	if terr := c.f.Truncate(c.size); terr != nil {
		err = fmt.Errorf("%w (and cutting it back: %v)", err, terr)
	}
	c.f.Close()
	c.f, c.broken = nil, err
	return err
}

// maybeCompact rewrites the catalog once its records outnumber the live
// pipelines twice over (plus compactSlack). A failure is logged: the
// change before it stands, durable in the old file, and the next change
// rewrites the catalog (the old file is given up, see failAppend).
func (c *catalog) maybeCompact() {
	if c.records <= 2*len(c.Pipelines)+compactSlack {
		return
	}
	if err := c.save(); err != nil {
		c.log.Error("compacting the pipeline catalog failed; the next change rewrites it", "err", err)
		c.broken = err
	}
}

// save rewrites the catalog whole, durably: a temporary file holding a
// put record per pipeline, fdatasync, rename, directory sync. A
// pipelines.json left from an older version is removed after.
func (c *catalog) save() error {
	buf := make([]byte, catalogHeader, catalogHeader+256*len(c.Pipelines))
	copy(buf, catalogMagic)
	binary.BigEndian.PutUint32(buf[8:], catalogVersion)
	binary.BigEndian.PutUint32(buf[12:], batch.Checksum(buf[:12]))
	for _, s := range c.Pipelines {
		var err error
		if buf, err = putRecord(buf, s); err != nil {
			return err
		}
	}
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
	if err := vfs.WriteFileAtomic(c.fs, c.path, buf); err != nil {
		return fmt.Errorf("node: write pipeline catalog: %w", err)
	}
	c.size, c.records, c.broken, c.migrated = int64(len(buf)), len(c.Pipelines), nil, false
	if c.legacy {
		legacy := filepath.Join(c.dir, legacyName)
		if err := c.fs.Remove(legacy); err != nil && !vfs.IsNotExist(err) {
			return fmt.Errorf("node: remove the old pipeline catalog %s: %w", legacy, err)
		}
		if err := c.fs.SyncDir(c.dir); err != nil {
			return fmt.Errorf("node: remove the old pipeline catalog %s: %w", legacy, err)
		}
		c.legacy = false
	}
	return nil
}

// close closes the catalog's file.
func (c *catalog) close() {
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
}
