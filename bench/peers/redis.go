package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
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
var ErrNoRedisServer = errors.New("redis-server not found: install it with apt-get install redis-server (or leave Redis out with --systems sense,nats)")

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

// redisTarget is a redis-server child process with AOF on, and a go-redis
// client that pipelines XADDs.
type redisTarget struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait returned
	out    *tailBuffer
	rdb    *redis.Client

	mu      sync.Mutex
	queue   []redisEvent
	ready   sync.Cond // queue not empty, or closed
	space   sync.Cond // queue below redisMaxQueued, or closed
	closed  bool
	workers sync.WaitGroup
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
	cmd := exec.Command(path,
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--dir", dir,
		"--daemonize", "no",
		"--save", "",
		"--appendonly", "yes",
		"--appendfsync", appendfsync,
		"--loglevel", "warning",
	)
	out := &tailBuffer{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	t := &redisTarget{cmd: cmd, exited: make(chan struct{}), out: out}
	go func() { cmd.Wait(); close(t.exited) }()
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
		case <-t.exited:
			t.Close()
			return nil, fmt.Errorf("redis-server on port %d exited at start (%v): %s", port, cmd.ProcessState, strings.TrimSpace(out.String()))
		case <-ctx.Done():
			t.Close()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Close()
			return nil, fmt.Errorf("redis-server on port %d did not answer PING within 10s: %v; its output: %s", port, err, strings.TrimSpace(out.String()))
		}
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port for redis-server: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

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

// Close stops the client, then redis-server by its PID: SIGTERM, and
// SIGKILL if it has not exited within 5 seconds. Events still queued are
// sent before the workers stop.
func (t *redisTarget) Close() error {
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
	if err := t.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		errs = append(errs, fmt.Errorf("stopping redis-server (pid %d): %w", t.cmd.Process.Pid, err))
	}
	select {
	case <-t.exited:
	case <-time.After(5 * time.Second):
		if err := t.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, fmt.Errorf("killing redis-server (pid %d): %w", t.cmd.Process.Pid, err))
		}
		<-t.exited
	}
	return errors.Join(errs...)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
