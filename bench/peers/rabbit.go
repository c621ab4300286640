package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sensehq/sense/bench"
)

// rabbitQueue is the stream queue the benchmark publishes to and reads.
const rabbitQueue = "peers"

// rabbitPrefetch is the consumer's QoS prefetch: the deliveries the
// server may send before they are acknowledged (a stream requires one).
// The consumer acknowledges, with multiple set, every quarter of it and
// whenever it has caught up.
const rabbitPrefetch = 1000

// rabbitConfirmBuffer is the capacity of the channel amqp091-go delivers
// publisher confirms on. Its goroutine never blocks on anything else, so
// the capacity only smooths bursts.
const rabbitConfirmBuffer = 1 << 16

// The locations of the Debian package's programs. /usr/sbin/rabbitmq-server
// is a wrapper that runs the server as the rabbitmq user with the
// system's directories; the script it wraps honours the environment.
const (
	debianRabbitMQServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	debianEPMD           = "/usr/bin/epmd"
)

// ErrNoRabbitMQ is returned when rabbitmq-server (and Erlang's epmd,
// which comes with it) is not installed.
var ErrNoRabbitMQ = errors.New("rabbitmq-server not found: install it with apt-get install rabbitmq-server (or leave RabbitMQ out with --systems sense,nats,redis)")

// errRabbitClosed answers the publishes still unconfirmed when the
// target closes; errRabbitNack those the server refused.
var (
	errRabbitClosed = errors.New("rabbitmq: target closed with the publish unconfirmed")
	errRabbitNack   = errors.New("rabbitmq: publish nacked by the server")
)

// rabbitPaths finds the rabbitmq-server script that runs the broker in
// the foreground, and epmd.
func rabbitPaths() (server, epmd string, err error) {
	if isFile(debianRabbitMQServer) {
		server = debianRabbitMQServer
	} else if p, lerr := exec.LookPath("rabbitmq-server"); lerr == nil {
		// A generic install's sbin/rabbitmq-server, not a wrapper that
		// switches user (Debian's, reached by another path).
		if real, rerr := filepath.EvalSymlinks(p); rerr == nil && filepath.Base(real) == "rabbitmq-server" {
			server = real
		}
	}
	if p, lerr := exec.LookPath("epmd"); lerr == nil {
		epmd = p
	} else if isFile(debianEPMD) {
		epmd = debianEPMD
	}
	if server == "" || epmd == "" {
		return "", "", ErrNoRabbitMQ
	}
	return server, epmd, nil
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir()
}

func rabbitPeer() Peer {
	return Peer{
		ID:         "rabbitmq-stream",
		System:     "RabbitMQ Streams",
		Durability: "stream, no fsync (page cache)",
		Check:      func() error { _, _, err := rabbitPaths(); return err },
		Start: func(ctx context.Context, dir string) (Target, error) {
			t, err := startRabbit(ctx, dir)
			if err != nil {
				return nil, err // not a Target holding a nil pointer
			}
			return t, nil
		},
	}
}

// rabbitTarget is a RabbitMQ node in a child process with an epmd of its
// own, a stream queue, an AMQP 0.9.1 channel publishing with publisher
// confirms, and a consumer on a connection of its own.
type rabbitTarget struct {
	epmd *serverProc
	proc *serverProc // beam.smp: the script execs the Erlang VM
	url  string

	conn      *amqp.Connection
	ch        *amqp.Channel
	confirms  chan amqp.Confirmation
	answering sync.WaitGroup

	pubMu   sync.Mutex // pairs each publish with its delivery tag
	mu      sync.Mutex
	pending map[uint64]func(error)
	closed  bool

	rconn   *amqp.Connection
	reading sync.WaitGroup
}

func startRabbit(ctx context.Context, dir string) (*rabbitTarget, error) {
	server, epmd, err := rabbitPaths()
	if err != nil {
		return nil, err
	}
	// The ports are free when chosen and may be taken before the servers
	// bind them: try a few times, each in a fresh directory.
	var t *rabbitTarget
	for i := range 3 {
		sub := filepath.Join(dir, strconv.Itoa(i))
		if t, err = spawnRabbit(ctx, server, epmd, sub); err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if err := t.open(ctx); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// spawnRabbit starts epmd and a RabbitMQ node on free loopback ports with
// every file under dir, and waits until the node accepts an AMQP
// connection.
//
// Nothing of the system's installation is read or written but the
// programs: the node gets its own HOME (with its Erlang cookie), Mnesia
// and log directories, config file, plugins file (no plugin: streams are
// a core queue type, used here over AMQP 0.9.1), an environment file
// that does not exist (so /etc/rabbitmq/rabbitmq-env.conf is not read),
// and an epmd on a port of its own (ERL_EPMD_PORT), which it is told not
// to start itself (-start_epmd false), so that none is left behind.
func spawnRabbit(ctx context.Context, server, epmdPath, dir string) (*rabbitTarget, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	amqpPort, distPort, epmdPort := ports[0], ports[1], ports[2]
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	cookie := make([]byte, 16)
	rand.Read(cookie)
	if err := os.WriteFile(filepath.Join(home, ".erlang.cookie"), []byte(strings.ToUpper(hex.EncodeToString(cookie))), 0o400); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "rabbitmq.conf")
	err = os.WriteFile(conf, fmt.Appendf(nil, `listeners.tcp.1 = 127.0.0.1:%d
log.file = false
log.console = true
log.console.level = warning
`, amqpPort), 0o644)
	if err != nil {
		return nil, err
	}
	// Host names resolve from this file alone: no inet_gethost port
	// program (which runs in a session of its own, outside the node's
	// process group) and no DNS.
	inetrc := filepath.Join(dir, "inetrc")
	if err := os.WriteFile(inetrc, []byte("{host, {127,0,0,1}, [\"localhost\"]}.\n{lookup, [file]}.\n"), 0o644); err != nil {
		return nil, err
	}
	plugins := filepath.Join(dir, "enabled_plugins")
	if err := os.WriteFile(plugins, []byte("[].\n"), 0o644); err != nil {
		return nil, err
	}

	t := &rabbitTarget{
		url:     fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", amqpPort),
		pending: map[uint64]func(error){},
	}
	env := rabbitEnv(map[string]string{
		"HOME":          home,
		"ERL_EPMD_PORT": strconv.Itoa(epmdPort),
		"ERL_INETRC":    inetrc,
		// The node's names and ports.
		"RABBITMQ_NODENAME":        fmt.Sprintf("peers-%d@localhost", amqpPort),
		"RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
		"RABBITMQ_NODE_PORT":       strconv.Itoa(amqpPort),
		"RABBITMQ_DIST_PORT":       strconv.Itoa(distPort),
		// Its files.
		"RABBITMQ_MNESIA_BASE":          filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE":             filepath.Join(dir, "log"),
		"RABBITMQ_CONFIG_FILE":          conf,
		"RABBITMQ_CONFIG_FILES":         filepath.Join(dir, "conf.d"),
		"RABBITMQ_ADVANCED_CONFIG_FILE": filepath.Join(dir, "advanced.config"),
		"RABBITMQ_CONF_ENV_FILE":        filepath.Join(dir, "rabbitmq-env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE": plugins,
		"RABBITMQ_PID_FILE":             filepath.Join(dir, "rabbitmq.pid"),
		// With input allowed the script execs the Erlang VM instead of
		// waiting on it in a shell: the child's PID is beam.smp's, the one
		// to measure and to signal. -noinput still keeps the Erlang shell
		// off, +B i ignores the break signal (SIGINT), and the
		// distribution listens on loopback only.
		"RABBITMQ_ALLOW_INPUT":                "true",
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-noinput +B i -start_epmd false -kernel inet_dist_use_interface {127,0,0,1}",
	})

	t.epmd, err = startProc("epmd", epmdPath, []string{"-port", strconv.Itoa(epmdPort), "-address", "127.0.0.1"}, env, nil)
	if err != nil {
		return nil, err
	}
	if err := waitDial(ctx, t.epmd, epmdPort, 10*time.Second); err != nil {
		t.Close()
		return nil, err
	}
	t.proc, err = startProc("rabbitmq-server", server, nil, env, nil)
	if err != nil {
		t.Close()
		return nil, err
	}
	// The node opens its AMQP listener at the end of its boot.
	deadline := time.Now().Add(90 * time.Second)
	for {
		t.conn, err = amqp.Dial(t.url)
		if err == nil {
			return t, nil
		}
		select {
		case <-t.proc.exited:
			t.Close()
			return nil, t.proc.exitedError()
		case <-ctx.Done():
			t.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Close()
			return nil, fmt.Errorf("rabbitmq-server on port %d did not accept an AMQP connection within 90s: %v; its output: %s", amqpPort, err, strings.TrimSpace(t.proc.out.String()))
		}
	}
}

// rabbitEnv is this process's environment without the variables that
// would steer Erlang or RabbitMQ elsewhere (RABBITMQ_*, ERL_*, HOME),
// plus set.
func rabbitEnv(set map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name == "HOME" || strings.HasPrefix(name, "RABBITMQ_") || strings.HasPrefix(name, "ERL_") {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env
}

// waitDial waits until port on loopback accepts a TCP connection, p
// exits, ctx ends or limit passes.
func waitDial(ctx context.Context, p *serverProc, port int, limit time.Duration) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.exited:
			return p.exitedError()
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not listen on %s within %v: %v; its output: %s", p.name, addr, limit, err, strings.TrimSpace(p.out.String()))
		}
	}
}

// open declares the stream queue and puts a channel in confirm mode.
func (t *rabbitTarget) open(ctx context.Context) error {
	var err error
	if t.ch, err = t.conn.Channel(); err != nil {
		return fmt.Errorf("rabbitmq channel: %w", err)
	}
	// The stream coordinator may still be settling just after boot:
	// retry the declaration for a while.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = t.ch.QueueDeclare(rabbitQueue, true, false, false, false, amqp.Table{"x-queue-type": "stream"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("declaring stream queue %s: %w", rabbitQueue, err)
		}
		// A failed declaration closes the channel.
		time.Sleep(200 * time.Millisecond)
		if t.ch, err = t.conn.Channel(); err != nil {
			return fmt.Errorf("rabbitmq channel: %w", err)
		}
	}
	if err := t.ch.Confirm(false); err != nil {
		return fmt.Errorf("rabbitmq confirm mode: %w", err)
	}
	t.confirms = t.ch.NotifyPublish(make(chan amqp.Confirmation, rabbitConfirmBuffer))
	t.answering.Go(func() {
		for c := range t.confirms {
			var err error
			if !c.Ack {
				err = errRabbitNack
			}
			t.answer(c.DeliveryTag, err)
		}
		// The channel closed: nothing pending will be confirmed.
		t.mu.Lock()
		left := t.pending
		t.pending = map[uint64]func(error){}
		t.closed = true
		t.mu.Unlock()
		for _, onAck := range left {
			onAck(errRabbitClosed)
		}
	})
	return nil
}

// Read consumes the stream from its first message (x-stream-offset
// first) with a QoS prefetch of rabbitPrefetch, acknowledging (which a
// stream takes as credit) with multiple set.
func (t *rabbitTarget) Read(ctx context.Context, onEvent func([]byte)) error {
	var err error
	if t.rconn, err = amqp.Dial(t.url); err != nil {
		return fmt.Errorf("connecting the rabbitmq consumer: %w", err)
	}
	ch, err := t.rconn.Channel()
	if err != nil {
		return fmt.Errorf("rabbitmq consumer channel: %w", err)
	}
	if err := ch.Qos(rabbitPrefetch, 0, false); err != nil {
		return fmt.Errorf("rabbitmq consumer prefetch: %w", err)
	}
	deliveries, err := ch.ConsumeWithContext(ctx, rabbitQueue, "sense-peers-reader", false, false, false, false,
		amqp.Table{"x-stream-offset": "first"})
	if err != nil {
		return fmt.Errorf("consuming stream queue %s: %w", rabbitQueue, err)
	}
	t.reading.Go(func() {
		unacked := 0
		for d := range deliveries { // closed with the connection
			onEvent(d.Body)
			unacked++
			if unacked >= rabbitPrefetch/4 || len(deliveries) == 0 {
				if d.Ack(true) != nil {
					continue // closing; a lost event shows as unread
				}
				unacked = 0
			}
		}
	})
	return nil
}

func (t *rabbitTarget) Publish(_ context.Context, value []byte, onAck func(error)) {
	t.pubMu.Lock()
	defer t.pubMu.Unlock()
	tag := t.ch.GetNextPublishSeqNo()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		onAck(errRabbitClosed)
		return
	}
	t.pending[tag] = onAck
	t.mu.Unlock()
	// Streams store every message; delivery mode 2 says so all the same.
	err := t.ch.Publish("", rabbitQueue, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: value})
	if err != nil {
		// Not published: the tag goes to the next publish.
		t.answer(tag, err)
	}
}

// answer calls the callback of the publish with delivery tag tag once.
func (t *rabbitTarget) answer(tag uint64, err error) {
	t.mu.Lock()
	onAck, ok := t.pending[tag]
	delete(t.pending, tag)
	t.mu.Unlock()
	if ok {
		onAck(err)
	}
}

func (t *rabbitTarget) ServerCPU() (bench.CPUTime, error) { return t.proc.CPU() }

// Close stops the consumer and the publisher, then the node by its PID
// (SIGTERM, which RabbitMQ takes as a graceful stop; SIGKILL to its
// process group after 30 seconds), then epmd the same way.
func (t *rabbitTarget) Close() error {
	var errs []error
	if t.rconn != nil {
		t.rconn.Close()
		t.reading.Wait()
	}
	if t.conn != nil {
		// Closing the connection closes the confirms channel, which
		// answers what is still pending.
		t.conn.Close()
		t.answering.Wait()
	}
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	if t.proc != nil {
		if err := t.proc.stop(30 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if t.epmd != nil {
		if err := t.epmd.stop(5 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
