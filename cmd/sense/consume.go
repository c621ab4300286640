package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/sensehq/sense/admin"
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
if needed; --follow keeps waiting.`,
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
				if stop, err = newStopper(ctx, c, pipeline, start); err != nil {
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
				fmt.Fprintf(out, "%s/%d@%d\t%s\t%s\t%s\t%s\n", r.Pipeline, r.Partition, r.Offset, r.Key, r.Value,
					reg.Format(r.Mask), r.Priority)
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

// stopper knows, per partition, the offset to read up to and the next
// offset to read.
type stopper struct {
	hw, pos map[int32]int64
}

func newStopper(ctx context.Context, c *client.Client, pipeline string, from int64) (*stopper, error) {
	resp, err := c.Admin(ctx, admin.DescribePipeline{Pipeline: pipeline})
	if err != nil {
		return nil, err
	}
	st := &stopper{hw: map[int32]int64{}, pos: map[int32]int64{}}
	for _, p := range resp.Layout {
		st.hw[p.Partition] = p.HighWatermark
		switch {
		case from == client.Earliest:
			st.pos[p.Partition] = p.Start
		case from == client.Latest:
			st.pos[p.Partition] = p.HighWatermark
		default:
			st.pos[p.Partition] = max(from, p.Start)
		}
	}
	return st, nil
}

func (st *stopper) done() bool {
	for p, hw := range st.hw {
		if st.pos[p] < hw {
			return false
		}
	}
	return true
}

// next returns the next record; with a stopper, errCaughtUp once every
// partition has reached its high watermark.
func (st *stopper) next(ctx context.Context, cons *client.Consumer) (client.Record, error) {
	if st == nil {
		return cons.Next(ctx)
	}
	for {
		if st.done() {
			return client.Record{}, errCaughtUp
		}
		rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		r, err := cons.Next(rctx)
		cancel()
		if err != nil && ctx.Err() == nil && rctx.Err() != nil {
			continue // nothing yet; check again
		}
		if err == nil {
			st.pos[r.Partition] = r.Offset + 1
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

type recordJSON struct {
	Pipeline      string            `json:"pipeline"`
	Partition     int32             `json:"partition"`
	Hub           string            `json:"hub"`
	Offset        int64             `json:"offset"`
	Key           *string           `json:"key"`
	Value         *string           `json:"value"`
	Headers       map[string]string `json:"headers,omitempty"`
	Jurisdictions []string          `json:"jurisdictions"`
	Priority      string            `json:"priority"`
	Timestamp     string            `json:"timestamp"`
}

func jsonRecord(r client.Record, reg *jurisdiction.Registry) recordJSON {
	j := recordJSON{Pipeline: r.Pipeline, Partition: r.Partition, Hub: r.Hub, Offset: r.Offset,
		Priority: r.Priority.String(), Timestamp: r.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z07:00"), Jurisdictions: []string{}}
	if r.Key != nil {
		k := string(r.Key)
		j.Key = &k
	}
	if r.Value != nil {
		v := string(r.Value)
		j.Value = &v
	}
	for bit := 0; bit < 64; bit++ {
		if r.Mask.Has(bit) {
			if code, ok := reg.Code(bit); ok {
				j.Jurisdictions = append(j.Jurisdictions, code)
			}
		}
	}
	if len(r.Headers) > 0 {
		j.Headers = map[string]string{}
		for _, h := range r.Headers {
			j.Headers[h.Key] = string(h.Value)
		}
	}
	return j
}
