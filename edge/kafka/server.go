// Package kafka serves the Kafka wire protocol (docs/kafka.md) over TCP, so
// that existing Kafka clients produce to and fetch from Sense unchanged. A
// topic is a Sense pipeline; its partitions are the pipeline's buffers in
// order (node.Partitions). Request and response bodies are franz-go's kmsg
// types; the framing, the request header, dispatch and storage are ours.
//
// Each connection has one reader goroutine, which reads and decodes
// requests, and one handler goroutine, which handles them in arrival order
// and writes each response before handling the next, so responses go out
// in request order, as Kafka requires. At most MaxInFlight decoded
// requests wait between the two; when the queue is full the reader stops
// reading, which is the backpressure a client feels.
//
// Malformed input (a size outside [8, MaxRequestBytes], a header or body
// that does not decode) closes the connection with a log line: framing is
// lost or the client is broken. A request of an API key or version this
// server does not implement is answered with UNSUPPORTED_VERSION: for
// ApiVersions with the versions it does implement, in a version 0
// response, so the client can retry with one; for any other API see
// appendUnsupported.
package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/edge/tcpserve"
	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/security"
	"github.com/sensehq/sense/txn"
)

// DefaultMaxRequestBytes bounds a request's size unless Options says
// otherwise (Kafka's socket.request.max.bytes is 100 MiB too).
const DefaultMaxRequestBytes = 100 << 20

// Options configure a Server.
type Options struct {
	// AdvertisedAddr is the host:port given to clients in Metadata as the
	// one broker (node id 0). Empty means the local address of the
	// connection the request came on.
	AdvertisedAddr string
	// AutoCreateTopics creates a pipeline (default spec) for an unknown
	// topic named in Metadata (when the client allows auto-creation) or
	// Produce. server.go sets it from kafka.auto_create_topics.
	AutoCreateTopics bool
	// MaxRequestBytes bounds a request's size, checked before anything is
	// allocated for it; default DefaultMaxRequestBytes.
	MaxRequestBytes int32
	// MaxInFlight bounds the requests read ahead per connection; default 8.
	MaxInFlight int
	// MinInsyncReplicas is how many replicas hold a batch when it is
	// acknowledged (the topic config min.insync.replicas): 1 on a node
	// alone (the default), a majority of a partition's replicas in a
	// cluster.
	MinInsyncReplicas int
	// ClusterID is returned in Metadata; default "sense".
	ClusterID string
	// GroupInitialRebalanceDelay is how long the first join of an empty
	// consumer group waits for more members before the first generation
	// forms (Kafka's group.initial.rebalance.delay.ms). Zero means the
	// default, 3 s; negative means no delay.
	GroupInitialRebalanceDelay time.Duration
	// Cluster describes the other nodes of a cluster: brokers, partition
	// leaders, group coordinators. Nil means this node runs alone, as
	// broker 0 at AdvertisedAddr.
	Cluster Cluster
	// Auth authenticates SASL exchanges (SaslHandshake, SaslAuthenticate);
	// when it is Enabled, a connection must authenticate before anything
	// but ApiVersions, within AuthTimeout (default 10s) of connecting (see
	// auth.go). Nil: SASL is refused.
	Auth        *security.Authenticator
	AuthTimeout time.Duration
	// Authorizer is asked at produce, fetch, group and admin requests
	// when Auth is Enabled; nil allows everything.
	Authorizer security.Authorizer
	// TransactionMaxTimeout bounds the transaction timeout a transactional
	// producer may ask for (Kafka's transaction.max.timeout.ms); default
	// 15 minutes.
	TransactionMaxTimeout time.Duration
	// TransactionalIDExpiration forgets a transactional id with no
	// transaction under way and no change for that long (Kafka's
	// transactional.id.expiration.ms); default 7 days.
	TransactionalIDExpiration time.Duration
	// TransactionVersion is the Kafka transaction version in effect (the
	// feature transaction.version that ApiVersions finalizes): 2 is
	// KIP-890 part 2 (Produce 12, EndTxn 5 and TxnOffsetCommit 5: the
	// partitions and groups are added to the transaction implicitly and
	// every EndTxn bumps the epoch), 1 the protocol before it. Zero means
	// the default: 2 on a node alone, 1 in a cluster. 2 is refused in a
	// cluster: a produce to a partition led by a node that does not
	// coordinate transactions could not add the partition to the
	// transaction durably before the batch is appended (docs/kafka.md,
	// "Transaction version 2").
	TransactionVersion int
	// Admin serves DescribeUserScramCredentials and
	// AlterUserScramCredentials (user.list, user.create, user.delete);
	// nil answers them UNSUPPORTED_VERSION... as an unknown API.
	Admin  admin.Handler
	Logger *slog.Logger
}

// Server serves the Kafka protocol for one node.
type Server struct {
	node    *node.Node
	offsets *group.Store
	opts    Options
	log     *slog.Logger

	groups *group.Coordinator
	txns   *txn.Coordinator
	conns  tcpserve.Tracker
	// versions is what this server serves and ApiVersions advertises
	// (versionTable of opts.TransactionVersion).
	versions []versionRange
}

// New returns a server for n, keeping consumer groups' committed offsets
// in offsets.
func New(n *node.Node, offsets *group.Store, opts Options) (*Server, error) {
	if n == nil || offsets == nil {
		return nil, errors.New("kafka: New needs a node and an offsets store")
	}
	if opts.MaxRequestBytes == 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if opts.MaxRequestBytes < 64 {
		return nil, fmt.Errorf("kafka: MaxRequestBytes %d is too small", opts.MaxRequestBytes)
	}
	if opts.AdvertisedAddr != "" {
		if _, _, err := net.SplitHostPort(opts.AdvertisedAddr); err != nil {
			return nil, fmt.Errorf("kafka: advertised address %q: %w", opts.AdvertisedAddr, err)
		}
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 8
	}
	if opts.ClusterID == "" {
		opts.ClusterID = "sense"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.AuthTimeout <= 0 {
		opts.AuthTimeout = 10 * time.Second
	}
	if opts.Authorizer == nil {
		opts.Authorizer = security.DefaultAuthorizer{}
	}
	switch {
	case opts.TransactionVersion == 0:
		opts.TransactionVersion = 2
	case opts.TransactionVersion != 1 && opts.TransactionVersion != 2:
		return nil, fmt.Errorf("kafka: TransactionVersion %d: 1 or 2", opts.TransactionVersion)
	}
	switch {
	case opts.GroupInitialRebalanceDelay == 0:
		opts.GroupInitialRebalanceDelay = 3 * time.Second
	case opts.GroupInitialRebalanceDelay < 0:
		opts.GroupInitialRebalanceDelay = 0
	}
	s := &Server{node: n, offsets: offsets, opts: opts, log: opts.Logger, versions: versionTable(opts.TransactionVersion), groups: group.NewCoordinator(group.Config{InitialRebalanceDelay: opts.GroupInitialRebalanceDelay})}
	txns, err := txn.New(txn.Config{
		Store: offsets,
		WriteMarker: func(ctx context.Context, tp txn.TopicPartition, m batch.Marker) error {
			return n.AppendMarker(ctx, tp.Topic, tp.Partition, m)
		},
		NewProducerID: n.NewProducerID,
		OpenTxn: func(tp txn.TopicPartition, pid int64) (txn.OpenTxnInfo, error) {
			open, first, epoch, err := n.OpenTransaction(tp.Topic, tp.Partition, pid)
			return txn.OpenTxnInfo{Open: open, First: first, Epoch: epoch}, err
		},
		PartitionEnd: func(tp txn.TopicPartition) (int64, error) {
			end, err := n.NextOffset(tp.Topic, tp.Partition)
			if err == nil && end < 0 {
				err = fmt.Errorf("partition %d of %q does not exist", tp.Partition, tp.Topic)
			}
			return end, err
		},
		StartMarker: func(tp txn.TopicPartition, m batch.Marker) (txn.MarkerAck, error) {
			a, err := n.StartMarker(tp.Topic, tp.Partition, m)
			if a == nil {
				return nil, err // not a nil Ack in a non-nil interface
			}
			return a, err
		},
		MaxTimeout:   opts.TransactionMaxTimeout,
		IDExpiration: opts.TransactionalIDExpiration,
		Logger:       opts.Logger,
	})
	if err != nil {
		s.groups.Close()
		return nil, err
	}
	s.txns = txns
	return s, nil
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("kafka: server closed")

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	return s.conns.Serve(ln, func(nc net.Conn) tcpserve.Conn { return s.newConn(nc) }, ErrServerClosed)
}

// Shutdown stops accepting and reading, ends long polls, lets the
// requests already read finish (their responses are sent) and closes every
// connection. If ctx ends first, the connections are closed at once.
func (s *Server) Shutdown(ctx context.Context) error {
	defer s.groups.Close()
	defer s.txns.Close()
	return s.conns.Shutdown(ctx)
}

// conn is one client connection.
type conn struct {
	s      *Server
	nc     net.Conn
	log    *slog.Logger
	ctx    context.Context // ends when the server stops the connection
	cancel context.CancelFunc
	// jobs holds the requests read and not yet handled, in order, for the
	// handler goroutine; queued counts them (added by the reader before
	// it queues one, taken off by the handler once it handed the job's
	// reply on). replies holds the answers on their way out, in request
	// order, for the writer goroutine. ended: a reply handed on closes the
	// connection after it, so nothing read later is handled; it belongs
	// to whoever handles requests now (the handler, or the reader while
	// queued is 0).
	jobs    chan *job
	queued  atomic.Int32
	replies chan *job
	ended   bool

	stopping atomic.Bool

	// Authentication. authenticated is set by the handler goroutine and
	// read by the reader (for the request size allowed); the rest belongs
	// to whoever handles requests (as ended): the SASL exchange under way, the principal
	// (Anonymous until authenticated; ctx carries it), and a reason to
	// close the connection once the response being answered is written.
	authenticated atomic.Bool
	session       security.Session
	principal     security.Principal
	// certChecked is set once the client certificate was looked at
	// (security.certificate_user).
	certChecked bool
	// filter removes records a jurisdiction-limited principal may not
	// receive from its fetches.
	filter     node.MaskFilter
	closeAfter string
	// writeFailed: the writer could not send an answer; the connection is
	// closed and the requests still queued are dropped.
	writeFailed atomic.Bool

	// txnSession is the connection as the transaction coordinator's
	// EndTxn fence knows it (txn/fence.go).
	txnSession *txn.Session

	// parse is the reader's, kept from one request to the next.
	parse parseState
}

// job is one decoded request, or a reason to close after the responses
// before it are written.
type job struct {
	hdr   header
	req   kmsg.Request
	close string // non-empty: close the connection, logging this
	// reserved is what the request holds of the node's ingress budget,
	// released once it is answered.
	reserved int64
	// call is a Produce's (req is &call.req), decoded into a pooled call
	// whose frame its records alias.
	call *produceCall
	r    reply // the answer, once prepared
}

// Jobs are pooled: one is taken per request read and put back once its
// answer is written (or dropped).
var jobPool = sync.Pool{New: func() any { return new(job) }}

func newJob() *job { return jobPool.Get().(*job) }

// recycle puts j (and its produce call) back once nothing refers to it.
func recycle(j *job) {
	if j.call != nil {
		putCall(j.call)
	}
	*j = job{}
	jobPool.Put(j)
}

func (s *Server) newConn(nc net.Conn) *conn {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{s: s, nc: nc, log: s.log.With("remote", nc.RemoteAddr().String()), ctx: ctx, cancel: cancel,
		jobs: make(chan *job, s.opts.MaxInFlight), replies: make(chan *job, maxPipelined), txnSession: s.txns.NewSession()}
	if c.authRequired() {
		nc.SetReadDeadline(time.Now().Add(s.opts.AuthTimeout))
	}
	return c
}

func (c *conn) stop() {
	c.stopping.Store(true)
	c.cancel()
	c.nc.SetReadDeadline(time.Now())
}

// Serve, Stop and Close make conn a tcpserve.Conn.
func (c *conn) Serve() { c.serve() }

// Stop asks the connection to read no new requests.
func (c *conn) Stop() { c.stop() }

// Close closes the connection at once.
func (c *conn) Close() { c.nc.Close() }

func (c *conn) serve() {
	defer c.cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.handle()
	}()
	c.read()
	close(c.jobs)
	<-done
	c.nc.Close()
}

// read decodes requests and queues them until the connection ends, a
// request is malformed or unsupported, or the server stops.
func (c *conn) read() {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var sz [4]byte
	for {
		if _, err := io.ReadFull(br, sz[:]); err != nil {
			c.readFailed(err)
			return
		}
		size := int32(binary.BigEndian.Uint32(sz[:]))
		limit := c.s.opts.MaxRequestBytes
		if c.authRequired() {
			limit = min(limit, preAuthMaxRequest)
		}
		if size < minRequestBytes || size > limit {
			j := newJob()
			j.close = fmt.Sprintf("request size %d outside [%d, %d]", size, minRequestBytes, limit)
			c.queue(j)
			return
		}
		// The request's bytes count against the node's ingress memory
		// budget until it is answered; while the budget is full, reading
		// waits (backpressure), and low and medium events are shed past
		// their levels, as on the native edge.
		if err := c.s.node.Reserve(c.ctx, int64(size)); err != nil {
			return
		}
		// A Produce (API key 0) is read into a pooled produce call's
		// buffer and decoded into the call, which keeps the frame its
		// records alias until the answer is written. Any other request
		// gets a frame of its own, of its size: its fields may alias it,
		// and some outlive the request (a group member's metadata).
		var pc *produceCall
		var frame []byte
		if key, err := br.Peek(2); err == nil && key[0] == 0 && key[1] == 0 {
			pc = getCall()
			frame = pc.buffer(int(size))
			c.parse.produce = &pc.req
		} else {
			frame = make([]byte, size)
		}
		if _, err := io.ReadFull(br, frame); err != nil {
			if pc != nil {
				putCall(pc)
			}
			c.s.node.Release(int64(size))
			c.readFailed(err)
			return
		}
		hdr, req, err := parseRequest(frame, c.s.versions, &c.parse)
		c.parse.produce = nil
		j := newJob()
		j.hdr = hdr
		if r, ok := req.(*kmsg.ProduceRequest); ok && pc != nil && r == &pc.req && err == nil {
			j.call = pc
		} else if pc != nil {
			putCall(pc)
		}
		if err != nil {
			c.s.node.Release(int64(size))
			j.close = err.Error()
			c.queue(j)
			return
		}
		j.req, j.reserved = req, int64(size)
		c.queue(j)
	}
}

// queue hands a request read on to be handled, in order. A produce request
// that finds no request of the connection waiting to be handled, at a node
// whose appends would not make it wait, is started here by the reader (up
// to its writes) instead of by the handler: a hand-off to the handler costs
// a goroutine wake-up per request, much of a light load's CPU. Every other
// request, and a produce behind others or at a busy node, goes through the
// handler, so that a request's wait for its turn shows in the node's
// queueing delay rather than in the socket, and a fetch's wait never stops
// the reading.
func (c *conn) queue(j *job) {
	if _, ok := j.req.(*kmsg.ProduceRequest); ok && j.close == "" && c.queued.Load() == 0 && !c.s.node.AppendsWaiting() {
		c.handleOne(j)
		return
	}
	c.queued.Add(1)
	c.jobs <- j
}

// readFailed notes why reading stopped: a client that did not
// authenticate in time is recorded in the security audit log.
func (c *conn) readFailed(err error) {
	switch {
	case errors.Is(err, io.EOF) || c.stopping.Load():
	case c.authRequired() && errors.Is(err, os.ErrDeadlineExceeded):
		c.s.opts.Auth.Record("kafka", c.remote(), "", "", fmt.Errorf("no authentication within %s (security.auth_timeout); connection closed", c.s.opts.AuthTimeout))
	default:
		c.log.Debug("kafka connection read failed", "err", err)
	}
}

// maxPipelined bounds the requests of a connection handled ahead of the
// one whose answer is on its way out (a produce waiting to be durable).
const maxPipelined = 8

// reply is a request's answer on its way out, in request order.
type reply struct {
	hdr header
	// resp is the response; call, when set, is a produce started up to
	// its writes, whose finish waits for its batches to be durable and
	// gives the response. No response (acks 0) when neither gives one,
	// unless unsupported.
	resp        kmsg.Response
	call        *produceCall
	unsupported bool // answer UNSUPPORTED_VERSION
	// After it: hangUp closes the connection at once (nothing is
	// answered); closeAfter half-closes it once the answer is written.
	hangUp     bool
	closeAfter bool
	reserved   int64 // the request's ingress bytes, released once answered
}

// ends reports whether the connection ends after r: nothing read after
// it is handled.
func (r *reply) ends() bool { return r.hangUp || r.closeAfter }

// handle handles the queued requests in order and hands their answers to
// a writer, which sends them in the same order. A produce request is
// handled up to its writes: the next requests are handled while its
// batches become durable (at most maxPipelined ahead), so a producer's
// requests in flight are stored in order and share fdatasyncs, and every
// answer still leaves in request order, each produce's once durable. The
// reader handles a produce itself when nothing is queued (queue); the
// handler's requests and the reader's are one sequence either way.
func (c *conn) handle() {
	written := make(chan struct{})
	go func() {
		defer close(written)
		c.writeReplies(c.replies)
	}()
	for j := range c.jobs {
		c.handleOne(j)
		c.queued.Add(-1)
	}
	close(c.replies)
	<-written
}

// handleOne handles one request (a produce up to its writes) and hands its
// reply to the writer; after a reply that ends the connection, or once
// writing failed, the request is dropped.
func (c *conn) handleOne(j *job) {
	if c.ended || c.writeFailed.Load() {
		c.s.node.Release(j.reserved)
		recycle(j)
		return
	}
	c.prepare(j)
	c.ended = j.r.ends()
	c.replies <- j // blocks while maxPipelined answers wait: backpressure
}

// writeReplies sends the answers in order until the connection fails or
// ends, and releases every request's bytes once it is answered (or
// dropped).
func (c *conn) writeReplies(replies <-chan *job) {
	var out []byte
	failed := false
	for j := range replies {
		r := &j.r
		if !failed {
			out, failed = c.send(r, out)
			if failed {
				c.writeFailed.Store(true)
			}
		} else if r.call != nil {
			c.finishProduce(r.call) // its batches are written: wait for them all the same
		}
		c.s.node.Release(r.reserved)
		recycle(j)
	}
}

// prepare handles one request (a produce up to its writes) and sets its
// reply, j.r.
func (c *conn) prepare(j *job) {
	r := &j.r
	*r = reply{hdr: j.hdr, reserved: j.reserved}
	if j.close != "" {
		c.log.Warn("closing Kafka connection", "api_key", j.hdr.key, "api_version", j.hdr.version,
			"correlation_id", j.hdr.corr, "client_id", j.hdr.clientID, "reason", j.close)
		r.hangUp = true
		return
	}
	if !c.certChecked {
		// The TLS handshake is done once a request was read.
		c.certChecked = true
		c.certificateAuth()
	}
	if c.authRequired() && !beforeAuth(j.hdr.key) {
		r.resp = c.unauthenticated(j.hdr)
		r.closeAfter = true
		return
	}
	if j.req == nil { // parseRequest found an unsupported key or version
		c.log.Warn("unsupported Kafka request answered with UNSUPPORTED_VERSION", "api_key", j.hdr.key,
			"api_version", j.hdr.version, "client_id", j.hdr.clientID)
		r.unsupported = true
		return
	}
	if req, ok := j.req.(*kmsg.ProduceRequest); ok {
		if j.call == nil { // decoded on its own (parseRequest without a call)
			j.call = getCall()
			j.call.req = *req
		}
		c.startProduce(j.call)
		r.call = j.call
	} else {
		r.resp = c.dispatch(j)
	}
	r.closeAfter = c.closeAfter != ""
}

// send writes r's answer, reusing out as the buffer; failed reports that
// the connection is closed.
func (c *conn) send(r *reply, out []byte) (_ []byte, failed bool) {
	if r.hangUp {
		c.nc.Close()
		return out, true
	}
	resp := r.resp
	var produced *kmsg.ProduceResponse
	if r.call != nil {
		produced = c.finishProduce(r.call)
	}
	switch {
	case r.unsupported:
		out = appendUnsupported(out[:0], r.hdr)
	case produced != nil:
		out = appendProduceResponse(out[:0], r.hdr, produced)
	case resp != nil:
		out = appendResponse(out[:0], r.hdr, resp)
	case r.closeAfter:
		return out, c.closeNow()
	default: // acks=0 produce: no response
		return out, false
	}
	if _, err := c.nc.Write(out); err != nil {
		c.nc.Close()
		failed = true
	}
	if cap(out) > 1<<20 {
		out = nil
	}
	if r.closeAfter && !failed {
		failed = c.closeNow()
	}
	return out, failed
}

func (c *conn) closeNow() bool {
	c.log.Warn("closing Kafka connection", "reason", c.closeAfter)
	c.stopping.Store(true) // the reader's end is expected, not news
	if tc, ok := c.nc.(*net.TCPConn); ok {
		// Half-close, and let the reader drain what the client still
		// sends for a moment: closing with unread bytes would reset the
		// connection and could lose the answer on its way.
		tc.CloseWrite()
		tc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		return true
	}
	c.nc.Close()
	return true
}

func (c *conn) dispatch(j *job) kmsg.Response {
	switch req := j.req.(type) { // Produce: prepare starts it (startProduce)
	case *kmsg.FetchRequest:
		return c.fetch(req)
	case *kmsg.ListOffsetsRequest:
		return c.listOffsets(req)
	case *kmsg.OffsetCommitRequest:
		return c.offsetCommit(req)
	case *kmsg.OffsetFetchRequest:
		return c.offsetFetch(req)
	case *kmsg.FindCoordinatorRequest:
		return c.findCoordinator(req)
	case *kmsg.JoinGroupRequest:
		return c.joinGroup(req, j.hdr)
	case *kmsg.HeartbeatRequest:
		return c.heartbeat(req)
	case *kmsg.LeaveGroupRequest:
		return c.leaveGroup(req)
	case *kmsg.SyncGroupRequest:
		return c.syncGroup(req)
	case *kmsg.DescribeGroupsRequest:
		return c.describeGroups(req)
	case *kmsg.ListGroupsRequest:
		return c.listGroups(req)
	case *kmsg.DeleteGroupsRequest:
		return c.deleteGroups(req)
	case *kmsg.OffsetDeleteRequest:
		return c.offsetDelete(req)
	case *kmsg.MetadataRequest:
		return c.metadata(req)
	case *kmsg.ApiVersionsRequest:
		return c.apiVersions(req, j.hdr)
	case *kmsg.InitProducerIDRequest:
		return c.initProducerID(req)
	case *kmsg.AddPartitionsToTxnRequest:
		return c.addPartitionsToTxn(req)
	case *kmsg.AddOffsetsToTxnRequest:
		return c.addOffsetsToTxn(req)
	case *kmsg.EndTxnRequest:
		return c.endTxn(req)
	case *kmsg.TxnOffsetCommitRequest:
		return c.txnOffsetCommit(req)
	case *kmsg.DescribeTransactionsRequest:
		return c.describeTransactions(req)
	case *kmsg.ListTransactionsRequest:
		return c.listTransactions(req)
	case *kmsg.CreateTopicsRequest:
		return c.createTopics(req)
	case *kmsg.DeleteTopicsRequest:
		return c.deleteTopics(req)
	case *kmsg.DeleteRecordsRequest:
		return c.deleteRecords(req)
	case *kmsg.DescribeConfigsRequest:
		return c.describeConfigs(req)
	case *kmsg.AlterConfigsRequest:
		return c.alterConfigs(req)
	case *kmsg.IncrementalAlterConfigsRequest:
		return c.incrementalAlterConfigs(req)
	case *kmsg.CreatePartitionsRequest:
		return c.createPartitions(req)
	case *kmsg.DescribeACLsRequest:
		return c.describeACLs(req)
	case *kmsg.CreateACLsRequest:
		return c.createACLs(req)
	case *kmsg.DeleteACLsRequest:
		return c.deleteACLs(req)
	case *kmsg.DescribeClusterRequest:
		return c.describeCluster(req)
	case *kmsg.SASLHandshakeRequest:
		return c.saslHandshake(req)
	case *kmsg.SASLAuthenticateRequest:
		return c.saslAuthenticate(req)
	case *kmsg.DescribeUserSCRAMCredentialsRequest:
		return c.describeUserSCRAMCredentials(req)
	case *kmsg.AlterUserSCRAMCredentialsRequest:
		return c.alterUserSCRAMCredentials(req)
	}
	panic(fmt.Sprintf("kafka: no handler for %T", j.req)) // parseRequest admits only the types above
}
