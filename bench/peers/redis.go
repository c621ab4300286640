package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sensehq/sense/bench"
)

// Redis stream and field the benchmark appends to.
const (
	redisStream = "peers"
	redisField  = "v"
)

// Redis client shape: redisConns pipelines run at once, each of at most
// redisBatch XADDs, like the Sense producer's 4 requests in flight of at
// most 1000 events. Queued events beyond redisMaxQueued block Publish.
const (
	redisConns     = 4
	redisBatch     = 1000
	redisMaxQueued = 1 << 20
)

// ErrNoRedisServer is returned when redis-server is not installed.
var ErrNoRedisServer = errors.New("redis-server not found: install it with apt-get install redis-server (or leave Redis out with --systems sense,nats,rabbitmq)")

// errRedisClosed answers the events still queued when the target closes.
var errRedisClosed = errors.New("redis: target closed with the event unsent")

// redisServerPath finds redis-server on PATH, then where Debian puts it.
func redisServerPath() (string, error) {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	const debian = "/usr/bin/redis-server"
	if fi, err := os.Stat(debian); err == nil && !fi.IsDir() {
		return debian, nil
	}
	return "", ErrNoRedisServer
}

func redisPeer(id, appendfsync string) Peer {
	return Peer{
		ID:         id,
		System:     "Redis Streams",
		Durability: "appendfsync " + appendfsync,
		Check:      func() error { _, err := redisServerPath(); return err },
		Start: func(ctx context.Context, dir string) (Target, error) {
			t, err := startRedis(ctx, dir, appendfsync)
			if err != nil {
				return nil, err // not a Target holding a nil pointer
			}
			return t, nil
		},
	}
}

// redisTarget is a redis-server child process with AOF on, a go-redis
// client that pipelines XADDs, and a reader of the stream with XREAD.
type redisTarget struct {
	proc *serverProc
	rdb  *redis.Client

	mu      sync.Mutex
	queue   []redisEvent
	ready   sync.Cond // queue not empty, or closed
	space   sync.Cond // queue below redisMaxQueued, or closed
	closed  bool
	workers sync.WaitGroup

	// The reader: its client, its stop signal and its end.
	reader  *redis.Client
	quit    chan struct{}
	reading sync.WaitGroup
}

type redisEvent struct {
	value []byte
	onAck func(error)
}

func startRedis(ctx context.Context, dir, appendfsync string) (*redisTarget, error) {
	path, err := redisServerPath()
	if err != nil {
		return nil, err
	}
	// The port is free when chosen and may be taken before redis-server
	// binds it: try a few.
	var t *redisTarget
	for range 3 {
		if t, err = spawnRedis(ctx, path, dir, appendfsync); err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	// Check that the server runs in the mode the table states.
	got, err := t.rdb.ConfigGet(ctx, "appendfsync").Result()
	if err == nil && got["appendfsync"] != appendfsync {
		err = fmt.Errorf("redis-server runs with appendfsync %q, want %q", got["appendfsync"], appendfsync)
	}
	if err != nil {
		t.Close()
		return nil, err
	}
	t.ready.L, t.space.L = &t.mu, &t.mu
	for range redisConns {
		t.workers.Go(t.work)
	}
	return t, nil
}

// spawnRedis starts redis-server on a free loopback port with its files in
// dir and waits until it answers PING.
func spawnRedis(ctx context.Context, path, dir, appendfsync string) (*redisTarget, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	proc, err := startProc("redis-server", path, []string{
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--dir", dir,
		"--daemonize", "no",
		"--save", "",
		"--appendonly", "yes",
		"--appendfsync", appendfsync,
		"--loglevel", "warning",
	}, nil, nil)
	if err != nil {
		return nil, err
	}
	t := &redisTarget{proc: proc}
	t.rdb = redis.NewClient(&redis.Options{
		Addr:            net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		PoolSize:        redisConns + 1,
		MaxRetries:      -1, // a retried XADD could be stored twice
		DisableIdentity: true,
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err = t.rdb.Ping(pctx).Err()
		cancel()
		if err == nil {
			return t, nil
		}
		select {
		case <-proc.exited:
			t.Close()
			return nil, fmt.Errorf("redis-server on port %d: %w", port, proc.exitedError())
		case <-ctx.Done():
			t.Close()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Close()
			return nil, fmt.Errorf("redis-server on port %d did not answer PING within 10s: %v; its output: %s", port, err, strings.TrimSpace(proc.out.String()))
		}
	}
}

// Read reads the stream from its start with XREAD COUNT redisBatch, on a
// connection of its own, blocking up to 100ms at a time for new entries.
func (t *redisTarget) Read(ctx context.Context, onEvent func([]byte)) error {
	t.reader = redis.NewClient(&redis.Options{
		Addr:            t.rdb.Options().Addr,
		PoolSize:        1,
		DisableIdentity: true,
	})
	if err := t.reader.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("connecting the redis reader: %w", err)
	}
	t.quit = make(chan struct{})
	t.reading.Go(func() {
		ctx := context.Background()
		last := "0-0"
		for {
			select {
			case <-t.quit:
				return
			default:
			}
			res, err := t.reader.XRead(ctx, &redis.XReadArgs{
				Streams: []string{redisStream, last},
				Count:   redisBatch,
				Block:   100 * time.Millisecond,
			}).Result()
			if errors.Is(err, redis.Nil) {
				continue // nothing new within the block time
			}
			if err != nil {
				select {
				case <-t.quit:
					return
				case <-time.After(10 * time.Millisecond):
					continue // a lost event shows as unread
				}
			}
			for _, st := range res {
				for _, m := range st.Messages {
					last = m.ID
					if v, ok := m.Values[redisField].(string); ok {
						onEvent([]byte(v))
					}
				}
			}
		}
	})
	return nil
}

func (t *redisTarget) ServerCPU() (bench.CPUTime, error) { return t.proc.CPU() }

func (t *redisTarget) Publish(ctx context.Context, value []byte, onAck func(error)) {
	t.mu.Lock()
	for len(t.queue) >= redisMaxQueued && !t.closed {
		t.space.Wait()
	}
	if t.closed {
		t.mu.Unlock()
		onAck(errRedisClosed)
		return
	}
	t.queue = append(t.queue, redisEvent{value: value, onAck: onAck})
	t.mu.Unlock()
	t.ready.Signal()
}

// work is one pipelining loop: it takes up to redisBatch queued events,
// sends their XADDs in one pipeline and answers each from its reply.
func (t *redisTarget) work() {
	ctx := context.Background()
	batch := make([]redisEvent, 0, redisBatch)
	for {
		t.mu.Lock()
		for len(t.queue) == 0 && !t.closed {
			t.ready.Wait()
		}
		if len(t.queue) == 0 {
			t.mu.Unlock()
			return
		}
		n := min(len(t.queue), redisBatch)
		batch = append(batch[:0], t.queue[:n]...)
		clear(t.queue[:n])
		t.queue = t.queue[n:]
		t.mu.Unlock()
		t.space.Broadcast()

		pipe := t.rdb.Pipeline()
		cmds := make([]*redis.StringCmd, len(batch))
		for i, e := range batch {
			cmds[i] = pipe.XAdd(ctx, &redis.XAddArgs{Stream: redisStream, Values: []any{redisField, e.value}})
		}
		// Exec's error is the first command's error; each command
		// carries its own.
		_, _ = pipe.Exec(ctx)
		for i, e := range batch {
			e.onAck(cmds[i].Err())
		}
		clear(batch)
	}
}

// Close stops the reader and the client, then redis-server by its PID:
// SIGTERM, and SIGKILL if it has not exited within 5 seconds. Events
// still queued are sent before the workers stop.
func (t *redisTarget) Close() error {
	if t.quit != nil {
		close(t.quit)
		t.reading.Wait()
	}
	if t.reader != nil {
		t.reader.Close()
	}
	if t.ready.L != nil {
		t.mu.Lock()
		t.closed = true
		t.mu.Unlock()
		t.ready.Broadcast()
		t.space.Broadcast()
		t.workers.Wait()
	}
	var errs []error
	if t.rdb != nil {
		if err := t.rdb.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the redis client: %w", err))
		}
	}
	if err := t.proc.stop(5 * time.Second); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
