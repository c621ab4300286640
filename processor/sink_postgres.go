package processor

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/jurisdiction"
)

// postgresSink writes a row per event into a table, and the processor's
// offsets into sense_processor_offsets, in one transaction: the batch and
// its commit are one. It locks the partition's offset row first, and a
// batch whose range the row says is stored already (a member that lost
// its partitions in a rebalance and had not noticed) writes nothing.
// Rows are keyed by (source_pipeline, source_partition, source_offset).
type postgresSink struct {
	pool  *pgxpool.Pool
	table string
	reg   *jurisdiction.Registry
}

// OffsetsTable holds the offsets of processors with a postgres sink.
const OffsetsTable = "sense_processor_offsets"

var postgresColumns = []string{"source_pipeline", "source_partition", "source_offset", "hub", "key", "value", "headers", "jurisdiction", "priority", "ts"}

func newPostgresSink(ctx context.Context, cfg config.Processor) (*postgresSink, error) {
	pc, err := pgxpool.ParseConfig(cfg.Sink.DSN)
	if err != nil {
		return nil, fmt.Errorf("sink.dsn: %w; write a PostgreSQL URL such as postgres://user:password@host:5432/db", err)
	}
	pc.MaxConns = deliverySlots + 1
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("sink.dsn: %w", err)
	}
	s := &postgresSink{pool: pool, table: cfg.Sink.Table}
	return s, nil
}

// setUp creates the tables when missing.
func (s *postgresSink) setUp(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (
	source_pipeline text NOT NULL,
	source_partition integer NOT NULL,
	source_offset bigint NOT NULL,
	hub text NOT NULL,
	key bytea,
	value bytea,
	headers jsonb,
	jurisdiction text,
	priority text,
	ts timestamptz NOT NULL,
	PRIMARY KEY (source_pipeline, source_partition, source_offset))`)
	if err == nil {
		_, err = s.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+OffsetsTable+` (
	processor text NOT NULL,
	pipeline text NOT NULL,
	partition integer NOT NULL,
	next_offset bigint NOT NULL,
	PRIMARY KEY (processor, pipeline, partition))`)
	}
	if err != nil {
		return fmt.Errorf("postgres sink: create the tables %s and %s: %w", s.table, OffsetsTable, err)
	}
	return nil
}

// Positions reads the offsets back (the tables are created first).
func (s *postgresSink) Positions(ctx context.Context, processor, pipeline string) (map[int32]int64, error) {
	if err := s.setUp(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT partition, next_offset FROM `+OffsetsTable+` WHERE processor = $1 AND pipeline = $2`, processor, pipeline)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for rows.Next() {
		var p int32
		var o int64
		if err := rows.Scan(&p, &o); err != nil {
			rows.Close()
			return nil, err
		}
		out[p] = o
	}
	rows.Close()
	return out, rows.Err()
}

// SetPositions moves the offsets (sense processor reset).
func (s *postgresSink) SetPositions(ctx context.Context, processor, pipeline string, pos map[int32]int64) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for p, o := range pos {
			if _, err := tx.Exec(ctx, `INSERT INTO `+OffsetsTable+` (processor, pipeline, partition, next_offset) VALUES ($1, $2, $3, $4)
ON CONFLICT (processor, pipeline, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset`, processor, pipeline, p, o); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *postgresSink) Deliver(ctx context.Context, b *Batch) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO `+OffsetsTable+` (processor, pipeline, partition, next_offset) VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING`, b.Processor, b.Pipeline, b.Partition, b.First); err != nil {
			return err
		}
		var next int64
		if err := tx.QueryRow(ctx, `SELECT next_offset FROM `+OffsetsTable+` WHERE processor = $1 AND pipeline = $2 AND partition = $3 FOR UPDATE`,
			b.Processor, b.Pipeline, b.Partition).Scan(&next); err != nil {
			return err
		}
		if next > b.Last {
			return nil // stored already
		}
		rows := make([][]any, 0, len(b.Records))
		for i := range b.Records {
			r := &b.Records[i]
			if r.Offset < next {
				continue
			}
			var headers []byte
			if len(r.Headers) > 0 {
				hm := make(map[string]string, len(r.Headers))
				for _, h := range r.Headers {
					hm[h.Key] = string(h.Value)
				}
				headers, _ = json.Marshal(hm)
			}
			var j, prio *string
			if r.Mask != 0 {
				v := s.reg.Format(r.Mask)
				j = &v
			}
			if r.HasPriority {
				v := r.Priority.String()
				prio = &v
			}
			rows = append(rows, []any{r.Pipeline, r.Partition, r.Offset, r.Hub, r.Key, r.Value, headersArg(headers), j, prio, r.Timestamp})
		}
		if _, err := tx.CopyFrom(ctx, tableIdent(s.table), postgresColumns, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE `+OffsetsTable+` SET next_offset = $4 WHERE processor = $1 AND pipeline = $2 AND partition = $3`,
			b.Processor, b.Pipeline, b.Partition, b.Last+1)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres sink: %w", err)
	}
	return nil
}

func headersArg(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

func tableIdent(t string) pgx.Identifier {
	var id pgx.Identifier
	for _, p := range splitDot(t) {
		id = append(id, p)
	}
	return id
}

func splitDot(s string) []string {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return []string{s[:i], s[i+1:]}
		}
	}
	return []string{s}
}

func (s *postgresSink) Close() error {
	s.pool.Close()
	return nil
}
