package processor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/jurisdiction"
)

// fileSink writes each batch to one file, DIR/PIPELINE/
// PIPELINE-PARTITION-FIRST-LAST.EXT (offsets zero-padded to 20 digits, so
// names sort by offset): NDJSON (.ndjson), a line per event with the
// fields of `sense consume --output json`, or Parquet (.parquet), a row
// per event (ParquetRow). It writes a temporary file (.tmp- and the name),
// fsyncs it, renames it to its name and fsyncs the directory; the
// processor commits after. A batch tried again, in this process or after
// a crash, is the same range and so the same name: the rename replaces a
// file with the same bytes, and there is never a second file.
type fileSink struct {
	dir     string
	parquet *parquetWriter // nil: NDJSON
	reg     *jurisdiction.Registry
}

const tmpPrefix = ".tmp-"

func newFileSink(cfg config.Processor, env SinkEnv) (*fileSink, error) {
	dir := filepath.Join(cfg.Sink.Dir, cfg.From.Pipeline)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sink.dir %q: %w; give a directory the node may write", cfg.Sink.Dir, err)
	}
	// Temporary files of a process that died are of no use: the batch
	// will be written again.
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("sink.dir %q: %w", cfg.Sink.Dir, err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	s := &fileSink{dir: dir, reg: env.Registry}
	if cfg.Sink.Format == "parquet" {
		s.parquet = newParquetWriter(cfg.Sink.Columns, env.Registry)
	}
	return s, nil
}

// FileName is the name of the file of a batch; ext is ndjson or parquet.
func FileName(pipeline string, partition int32, first, last int64, ext string) string {
	return fmt.Sprintf("%s-%d-%020d-%020d.%s", pipeline, partition, first, last, ext)
}

func (s *fileSink) Deliver(_ context.Context, b *Batch) error {
	ext := "ndjson"
	if s.parquet != nil {
		ext = "parquet"
	}
	name := FileName(b.Pipeline, b.Partition, b.First, b.Last, ext)
	tmp := filepath.Join(s.dir, tmpPrefix+name)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	w := bufio.NewWriterSize(f, 64<<10)
	if s.parquet != nil {
		err = s.parquet.write(w, b.Records)
	} else {
		enc := json.NewEncoder(w)
		for i := range b.Records {
			if err = enc.Encode(b.Records[i].JSON(s.reg)); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, name))
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("file sink: write %s: %w", name, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *fileSink) Close() error { return nil }
