package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/result"
)

// Produce events that may rest in Morocco or Senegal, then read the
// pipeline from the beginning. (Needs a running node; not run by go test.)
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Addr: "127.0.0.1:7070", ClientID: "example"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	reg, err := c.Registry(ctx)
	if err != nil {
		log.Fatal(err)
	}
	mask, err := reg.Parse("MA,SN")
	if err != nil {
		log.Fatal(err)
	}

	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: "payments"})
	if err != nil {
		log.Fatal(err)
	}
	for i := range 100 {
		ev := client.Event{Key: []byte("user42"), Value: fmt.Appendf(nil, "payment %d", i), Mask: mask}
		p.Send(ev, func(r client.Result) {
			switch {
			case errors.Is(r.Err, result.ErrNoCompliantHub):
				log.Printf("no hub in MA or SN may hold it; dropped before storage")
			case r.Err != nil:
				log.Printf("refused: %v", r.Err)
			}
		})
	}
	if err := p.Close(); err != nil { // flushes: every callback has run
		log.Fatal(err)
	}
	r := p.Produce(ctx, client.Event{Value: []byte("one more")}) // after Close: ErrClosed
	fmt.Println(errors.Is(r.Err, client.ErrClosed))

	cs, err := c.NewConsumer(ctx, client.ConsumerOptions{Pipeline: "payments", From: client.Earliest})
	if err != nil {
		log.Fatal(err)
	}
	defer cs.Close()
	for {
		rec, err := cs.NextWithin(ctx, time.Second)
		if errors.Is(err, client.ErrNoRecord) {
			return // caught up
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s/%d@%d %s %s %s\n", rec.Pipeline, rec.Partition, rec.Offset, rec.Key, rec.Value, reg.Format(rec.Mask))
	}
}
