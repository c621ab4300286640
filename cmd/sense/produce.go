package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
)

// defaultAddr is where client commands find a node.
const defaultAddr = "127.0.0.1:7070"

// signalContext is cancelled by SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func newProduceCmd() *cobra.Command {
	var (
		tf                                 transportFlags
		pipeline, juris, prio, key, keySep string
		linger, retries                    int
	)
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Send one event per line of standard input",
		Long: `Send one event per line of standard input to a pipeline. Each event is
acknowledged once it is durable. At the end the command prints how many events
were acknowledged and how many were refused, by error code, and exits non-zero
if any was refused.

Over --transport http a request whose answer is lost is not resent (HTTP
produce is not idempotent): its events are counted as refused with the code
UNKNOWN and may or may not be stored.`,
		Example: `  # Three events that may rest in Morocco or Senegal
  printf 'a\nb\nc\n' | sense produce --pipeline payments --jurisdiction MA,SN

  # Keyed, critical events: "user42:hello" becomes key user42, value hello
  echo 'user42:hello' | sense produce --pipeline alerts --priority critical --key-sep :

  # Over QUIC to a dev server, pinning the certificate sense serve printed
  echo hi | sense produce --pipeline telemetry --transport quic --server-fingerprint 3f9a...e1

  # Over HTTP/2 (h2c) to the HTTP listener, 127.0.0.1:8080
  echo hi | sense produce --pipeline telemetry --transport http`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			copts, err := tf.options("sense-produce")
			if err != nil {
				return err
			}
			c, err := client.Dial(ctx, copts)
			if err != nil {
				return err
			}
			defer c.Close()
			var mask jurisdiction.Mask
			if juris != "" {
				reg, err := c.Registry(ctx)
				if err != nil {
					return err
				}
				if mask, err = reg.Parse(juris); err != nil {
					return fmt.Errorf("--jurisdiction %q: %w", juris, err)
				}
			}
			var p event.Priority
			hasPrio := prio != ""
			if hasPrio {
				if p, err = event.ParsePriority(prio); err != nil {
					return fmt.Errorf("--priority: %w", err)
				}
			}
			popts := client.ProducerOptions{Pipeline: pipeline, MaxRetries: retries}
			if retries == 0 {
				popts.MaxRetries = -1
			}
			if linger >= 0 {
				popts.Linger = msDuration(linger)
			}
			prod, err := c.NewProducer(ctx, popts)
			if err != nil {
				return err
			}
			var mu sync.Mutex
			acked := 0
			refused := map[string]int{}
			done := func(r client.Result) {
				mu.Lock()
				defer mu.Unlock()
				if r.Err == nil {
					acked++
					return
				}
				refused[result.CodeOf(r.Err).String()]++
			}
			sc := bufio.NewScanner(cmd.InOrStdin())
			sc.Buffer(make([]byte, 64<<10), 16<<20)
			for sc.Scan() && ctx.Err() == nil {
				line := sc.Bytes()
				ev := client.Event{Value: bytes.Clone(line), Mask: mask, HasPriority: hasPrio, Priority: p}
				if key != "" {
					ev.Key = []byte(key)
				}
				if keySep != "" {
					if k, v, ok := bytes.Cut(line, []byte(keySep)); ok {
						ev.Key, ev.Value = bytes.Clone(k), bytes.Clone(v)
					}
				}
				prod.Send(ev, done)
			}
			if err := sc.Err(); err != nil {
				return fmt.Errorf("read standard input: %w", err)
			}
			if err := prod.Close(); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "acknowledged: %d\n", acked)
			total := 0
			codes := make([]string, 0, len(refused))
			for code, n := range refused {
				codes = append(codes, code)
				total += n
			}
			sort.Strings(codes)
			for _, code := range codes {
				fmt.Fprintf(out, "refused %s: %d\n", code, refused[code])
			}
			if total > 0 {
				return fmt.Errorf("%d of %d events were refused", total, total+acked)
			}
			return nil
		},
	}
	addTransportFlags(cmd, &tf)
	cmd.Flags().StringVar(&pipeline, "pipeline", "", "pipeline to produce to (required)")
	cmd.Flags().StringVar(&juris, "jurisdiction", "", "where the events may rest: codes, groups or * (default: the pipeline's)")
	cmd.Flags().StringVar(&prio, "priority", "", "critical, medium or low (default: the pipeline's)")
	cmd.Flags().StringVar(&key, "key", "", "key of every event")
	cmd.Flags().StringVar(&keySep, "key-sep", "", "split each line at the first occurrence into key and value")
	cmd.Flags().IntVar(&linger, "linger-ms", -1, "how long to wait to fill a batch (default: the client's)")
	cmd.Flags().IntVar(&retries, "retries", 2, "retries of events refused with a retriable code (NO_COMPLIANT_HUB, OVERLOADED, ...)")
	cmd.MarkFlagRequired("pipeline")
	return cmd
}

func msDuration(ms int) time.Duration { return time.Duration(ms) * time.Millisecond }
