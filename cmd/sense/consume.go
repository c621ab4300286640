package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/jurisdiction"
)

func newConsumeCmd() *cobra.Command {
	var (
		tf                     transportFlags
		pipeline, from, output string
		count                  int
		follow                 bool
	)
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Print the events of a pipeline",
		Long: `Print the events of a pipeline, from every partition. Without -n it reads what
is stored now and stops; with -n it stops after N events, waiting for new ones
if needed; --follow keeps waiting.

Each event shows the jurisdiction set and the priority stored with it: the
binary headers the node writes (sense.j, sense.p), else the text headers of a
Kafka producer (sense.jurisdiction, sense.priority). Compressed batches (gzip,
snappy, lz4, zstd) are decompressed; a batch that cannot be read ends the
command with an error naming its partition and offset.

Text output is one line per event, tab-separated:
  pipeline/partition@offset  key  value  jurisdiction (MA,SN)  priority
with "unrecorded" for a jurisdiction or a priority the event does not carry.
JSON output (--output json) is one object per line with pipeline, partition,
hub, offset, key, value (null when absent), headers, jurisdiction ("MA,SN"),
jurisdictions (the same codes as a list), priority and timestamp; jurisdiction,
jurisdictions and priority are left out when the event does not carry them.`,
		Example: `  # Everything stored in payments, as text
  sense consume --pipeline payments --from beginning

  # The next 10 events, as JSON lines
  sense consume --pipeline payments --from end -n 10 --output json

  # Over QUIC (UDP 127.0.0.1:7071), pinning a dev server's certificate
  sense consume --pipeline telemetry --from beginning --transport quic --server-fingerprint 3f9a...e1

  # Over HTTP/2 (h2c): a Server-Sent Events tail per partition
  sense consume --pipeline telemetry --from beginning --transport http`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start, err := parseFrom(from)
			if err != nil {
				return err
			}
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q: use text or json", output)
			}
			ctx, cancel := signalContext()
			defer cancel()
			copts, err := tf.options("sense-consume")
			if err != nil {
				return err
			}
			c, err := client.Dial(ctx, copts)
			if err != nil {
				return err
			}
			defer c.Close()
			reg, err := c.Registry(ctx)
			if err != nil {
				return err
			}
			cons, err := c.NewConsumer(ctx, client.ConsumerOptions{Pipeline: pipeline, From: start})
			if err != nil {
				return err
			}
			defer cons.Close()
			// Without -n or --follow, stop at the high watermarks seen at
			// the start.
			var stop *stopper
			if count <= 0 && !follow {
				if stop, err = newStopper(ctx, c, pipeline); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			enc := json.NewEncoder(out)
			for n := 0; count <= 0 || n < count; n++ {
				r, err := stop.next(ctx, cons)
				if errors.Is(err, errCaughtUp) {
					return nil
				}
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				if output == "json" {
					if err := enc.Encode(jsonRecord(r, reg)); err != nil {
						return err
					}
					continue
				}
				j, p := unrecorded, unrecorded
				if r.Mask != 0 {
					j = reg.Format(r.Mask)
				}
				if r.HasPriority {
					p = r.Priority.String()
				}
				fmt.Fprintf(out, "%s/%d@%d\t%s\t%s\t%s\t%s\n", r.Pipeline, r.Partition, r.Offset, r.Key, r.Value, j, p)
			}
			return nil
		},
	}
	addTransportFlags(cmd, &tf)
	cmd.Flags().StringVar(&pipeline, "pipeline", "", "pipeline to read (required)")
	cmd.Flags().StringVar(&from, "from", "beginning", "beginning, end, or an offset (applied to every partition)")
	cmd.Flags().IntVarP(&count, "count", "n", 0, "stop after N events (waiting for them)")
	cmd.Flags().BoolVar(&follow, "follow", false, "keep waiting for new events")
	cmd.Flags().StringVar(&output, "output", "text", "text or json (one object per line)")
	cmd.MarkFlagRequired("pipeline")
	return cmd
}

var errCaughtUp = errors.New("caught up")

// unrecorded is what the text output shows for a jurisdiction or a
// priority that an event does not carry.
const unrecorded = "unrecorded"

// stopper knows, per partition, the offset to read up to.
type stopper struct {
	hw map[int32]int64
}

func newStopper(ctx context.Context, c *client.Client, pipeline string) (*stopper, error) {
	_, layout, err := c.Describe(ctx, pipeline)
	if err != nil {
		return nil, err
	}
	st := &stopper{hw: map[int32]int64{}}
	for _, p := range layout {
		st.hw[p.Partition] = p.HighWatermark
	}
	return st, nil
}

// done reports whether the consumer's every position has reached the high
// watermark seen at the start. Positions, not the records returned, so
// that offsets holding no record (control batches) count as read.
func (st *stopper) done(cons *client.Consumer) bool {
	pos := cons.Positions()
	for p, hw := range st.hw {
		if pos[p] < hw {
			return false
		}
	}
	return true
}

// next returns the next record; with a stopper, errCaughtUp once every
// partition has reached its high watermark. Any error of the consumer is
// returned: a partition whose subscription ended (a batch it cannot read,
// say) never reaches its high watermark, so waiting on would never end.
func (st *stopper) next(ctx context.Context, cons *client.Consumer) (client.Record, error) {
	if st == nil {
		return cons.Next(ctx)
	}
	for {
		if st.done(cons) {
			return client.Record{}, errCaughtUp
		}
		r, err := cons.NextWithin(ctx, 200*time.Millisecond)
		if errors.Is(err, client.ErrNoRecord) {
			continue // nothing yet; check again
		}
		return r, err
	}
}

func parseFrom(s string) (int64, error) {
	switch s {
	case "beginning", "earliest":
		return client.Earliest, nil
	case "end", "latest":
		return client.Latest, nil
	}
	off, err := strconv.ParseInt(s, 10, 64)
	if err != nil || off < 0 {
		return 0, fmt.Errorf("--from %q: use beginning, end or an offset >= 0", s)
	}
	return off, nil
}

// jsonRecord is r as --output json prints it (client.RecordJSON).
func jsonRecord(r client.Record, reg *jurisdiction.Registry) client.RecordJSON { return r.JSON(reg) }
