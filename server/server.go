// Package server assembles one Sense process from its configuration: the
// node (storage and routing), the native TCP listener and the HTTP listener.
// cmd/sense's serve command and in-process tests both start it.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sensehq/sense/cluster"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/edge/httpedge"
	"github.com/sensehq/sense/edge/kafka"
	"github.com/sensehq/sense/edge/native"
	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/edge/native/wire/quicwire"
	"github.com/sensehq/sense/edge/quicedge"
	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/internal/tlsconf"
	"github.com/sensehq/sense/meta"
	"github.com/sensehq/sense/movelog"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/router"
	"github.com/sensehq/sense/vfs"
)

// Server is a running Sense process.
type Server struct {
	cfg  *config.Config
	log  *slog.Logger
	Node *node.Node
	// Offsets holds consumer groups' committed offsets.
	Offsets *group.Store
	native  *native.Server
	kafka   *kafka.Server
	http    *http.Server
	ready   atomic.Bool

	nativeLn, httpLn, kafkaLn net.Listener
	quicLn                    *quicedge.Listener
	kafkaAdv                  string
	cluster                   *clusterRuntime // nil in dev mode
	tls                       *tlsRuntime
	sec                       *securityRuntime
	// moves and mig are a node alone's move log and migrator (nil in a
	// cluster, whose metadata runtime owns its migrator).
	moves *movelog.Log
	mig   *migrator
	procs *processorRuntime
	wg    sync.WaitGroup
	errs  chan error
}

// NodeOptions turns a validated configuration into node options.
func NodeOptions(cfg *config.Config, log *slog.Logger) node.Options {
	o := node.Options{
		DataDir:             cfg.Node.DataDir,
		Registry:            cfg.Registry(),
		Durability:          cfg.Durability.Fsync,
		SegmentBytes:        int64(cfg.Durability.SegmentBytes),
		MaxOpenFiles:        cfg.Storage.MaxOpenFiles,
		PreallocateBytes:    cfg.PreallocateBytes(),
		GroupCommitInterval: cfg.GroupCommitInterval(),
		MemoryLimit:         int64(cfg.Router.MemoryLimit),
		ShedLowAt:           cfg.Router.ShedLowAt,
		ShedMediumAt:        cfg.Router.ShedMediumAt,
		TargetDelay:         time.Duration(cfg.Router.TargetDelay),
		DelayInterval:       time.Duration(cfg.Router.DelayInterval),
		AutoCreate:          cfg.Router.AutoCreatePipelines != nil && *cfg.Router.AutoCreatePipelines,
		MaxEventBytes:       int(cfg.Router.MaxEventBytes),
		DefaultPartitions:   cfg.Router.DefaultPartitions,
		AlertWebhook:        cfg.Alerts.Webhook,
		Logger:              log,
	}
	o.Hubs = HubSpecs(cfg)
	for _, p := range cfg.Pipelines {
		o.Pipelines = append(o.Pipelines, node.PipelineSpec{
			Name: p.Name, Partitions: p.Partitions, Retention: time.Duration(p.Retention), RetentionBytes: int64(p.RetentionBytes),
			DefaultPriority: p.DefaultPriority.String(), DefaultJurisdiction: p.DefaultJurisdiction,
			MaxMessageBytes: int64(p.MaxMessageBytes),
			CleanupPolicy:   p.CleanupPolicy, DeleteRetention: time.Duration(p.DeleteRetention),
			MinCompactionLag: time.Duration(p.MinCompactionLag), MinCleanableDirtyRatio: p.MinCleanableDirtyRatio,
		})
	}
	return o
}

// HubSpecs returns the configuration's hubs for the node.
func HubSpecs(cfg *config.Config) []node.HubSpec {
	var hubs []node.HubSpec
	for _, h := range cfg.Hubs {
		hubs = append(hubs, node.HubSpec{Name: h.Name, Jurisdiction: h.Jurisdiction, Status: router.HubStatus(h.Status), Deny: h.Policy.DenyPipelines})
	}
	return hubs
}

// Start listens on the configured addresses (so they are known and taken
// at once), recovers every log, and starts serving. The HTTP listener
// answers /healthz at once and /readyz once recovery is done.
func Start(cfg *config.Config, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, log: log, errs: make(chan error, 4), tls: newTLSRuntime(cfg, log)}
	var err error
	var httpTLS *tls.Config
	if cfg.Listeners.HTTP != config.ListenerOff {
		// HTTP/2 by ALPN with TLS, as net/http offers it.
		if httpTLS, err = s.tls.serverConfig(config.ListenerHTTP, []string{"h2", "http/1.1"}); err != nil {
			return nil, err
		}
		if s.httpLn, err = net.Listen("tcp", cfg.Listeners.HTTP); err != nil {
			return nil, fmt.Errorf("listen for HTTP on %s: %w (set listeners.http or --http-addr)", cfg.Listeners.HTTP, err)
		}
	}
	if cfg.Listeners.Native != config.ListenerOff {
		if s.nativeLn, err = net.Listen("tcp", cfg.Listeners.Native); err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("listen for the native protocol on %s: %w (set listeners.native or --native-addr)", cfg.Listeners.Native, err)
		}
		if s.nativeLn, err = s.tls.wrap(config.ListenerNative, s.nativeLn, []string{quicwire.ALPN}); err != nil {
			s.closeListeners()
			return nil, err
		}
	}
	if cfg.Listeners.Kafka != config.ListenerOff {
		if s.kafkaLn, err = net.Listen("tcp", cfg.Listeners.Kafka); err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("listen for Kafka clients on %s: %w (set listeners.kafka or --kafka-addr)", cfg.Listeners.Kafka, err)
		}
		if s.kafkaLn, err = s.tls.wrap(config.ListenerKafka, s.kafkaLn, nil); err != nil {
			s.closeListeners()
			return nil, err
		}
	}
	if cfg.Listeners.QUIC != config.ListenerOff {
		qopts := quicedge.Options{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile, DevCertDir: cfg.Node.DataDir, Logger: log}
		if cfg.TLS.Enabled() {
			src, err := s.tls.source(tlsconf.Files{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile})
			if err != nil {
				s.closeListeners()
				return nil, fmt.Errorf("TLS for the QUIC listener: %w (tls.cert_file, tls.key_file)", err)
			}
			qopts.GetCertificate = src.GetCertificate
		}
		// QUIC carries the native protocol: it asks for client
		// certificates as the native listener's settings say.
		if nt := cfg.TLS.Listener(config.ListenerNative); nt.ClientCAFile != "" && nt.ClientAuth != config.ClientAuthNone {
			src, err := s.tls.source(tlsconf.Files{CAFile: nt.ClientCAFile})
			if err != nil {
				s.closeListeners()
				return nil, fmt.Errorf("client certificates for the QUIC listener: %w (tls.client_ca_file, tls.native.client_ca_file)", err)
			}
			qopts.ClientCAs, qopts.ClientAuth = src.CAs, clientAuth(nt.ClientAuth)
		}
		if s.quicLn, err = quicedge.Listen(cfg.Listeners.QUIC, qopts); err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("listen for QUIC on %s: %w (set listeners.quic or --quic-addr, or off)", cfg.Listeners.QUIC, err)
		}
	}
	// HTTP first, so probes see "alive, not ready" during recovery.
	var nodeRef atomic.Pointer[node.Node]
	if s.httpLn != nil {
		// HTTP/1.1 and HTTP/2 on one listener: h2c with prior knowledge
		// without TLS, h2 by ALPN with it.
		useTLS := httpTLS != nil
		s.http = &http.Server{
			Handler: lazyHandler(&nodeRef, &s.ready, httpOptions(cfg, log), func(_ *node.Node, o *httpedge.Options) {
				// s.Node, s.cluster, s.moves and s.sec are set before the
				// node is stored.
				o.Admin = s.admin()
				o.Auth, o.Authorizer = s.sec.auth, s.sec.authz
			}),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
			Protocols:         httpedge.Protocols(useTLS),
			TLSConfig:         httpTLS,
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			var err error
			if useTLS {
				err = s.http.ServeTLS(s.httpLn, "", "") // the certificate comes from TLSConfig
			} else {
				err = s.http.Serve(s.httpLn)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.errs <- fmt.Errorf("HTTP listener: %w", err)
			}
		}()
	}
	t0 := time.Now()
	if s.kafkaLn != nil {
		adv := cfg.Listeners.KafkaAdvertisedAddr()
		if strings.HasSuffix(adv, ":0") {
			adv = s.kafkaLn.Addr().String()
		}
		if strings.HasPrefix(adv, "0.0.0.0:") || strings.HasPrefix(adv, "[::]:") {
			log.Warn("the address advertised to Kafka clients is a wildcard; set listeners.kafka_advertised to a reachable host:port", "advertised", adv)
		}
		s.kafkaAdv = adv
	}
	nopts := NodeOptions(cfg, log)
	if cfg.DevMode() {
		if s.Offsets, err = group.Open(vfs.Default, filepath.Join(cfg.Node.DataDir, "groups"), log, group.Preallocate(cfg.PreallocateBytes())); err != nil {
			s.shutdownHTTP(context.Background())
			s.closeListeners()
			return nil, err
		}
	} else {
		if s.cluster, err = startCluster(cfg, s.nodeInfo(), s.tls, log); err != nil {
			s.shutdownHTTP(context.Background())
			s.closeListeners()
			return nil, err
		}
		if s.Offsets, err = s.cluster.openOffsets(); err != nil {
			s.cluster.close()
			s.shutdownHTTP(context.Background())
			s.closeListeners()
			return nil, err
		}
		nopts.OpenBuffer = s.cluster.openBuffer
		nopts.FixedPipelines = true
		nopts.Proposer = &s.cluster.proposer
		nopts.ProducerIDs = s.cluster.proposer.producerID
		nopts.AutoCreate = false
	}
	if s.sec, err = openSecurity(cfg, s.cluster, log); err != nil {
		s.Offsets.Close()
		if s.cluster != nil {
			s.cluster.close()
		}
		s.shutdownHTTP(context.Background())
		s.closeListeners()
		return nil, err
	}
	nopts.PipelineDeleted = func(name string) error {
		var errs []error
		if err := s.Offsets.DeleteTopic(name); err != nil {
			errs = append(errs, fmt.Errorf("remove the consumer groups' committed offsets on it: %w", err))
		}
		// A node alone's migrator steps (its move log is opened once the
		// node is, and checked then against the pipelines).
		if ml := s.moves; ml != nil {
			if err := ml.Forget(name); err != nil {
				errs = append(errs, fmt.Errorf("forget its migration steps: %w", err))
			}
		}
		return errors.Join(errs...)
	}
	n, err := node.Open(nopts)
	if err != nil {
		s.sec.close()
		s.Offsets.Close()
		if s.cluster != nil {
			s.cluster.close()
		}
		s.shutdownHTTP(context.Background())
		s.closeListeners()
		return nil, err
	}
	s.Node = n
	if s.cluster != nil {
		s.cluster.node.Store(n)
		if s.cluster.meta, err = s.cluster.openMeta(n); err != nil {
			s.Shutdown(context.Background())
			return nil, err
		}
		s.cluster.proposer.m.Store(s.cluster.meta)
	} else {
		// A node alone migrates too, keeping its steps in a file of its
		// own (docs/sovereignty.md).
		path := filepath.Join(cfg.Node.DataDir, movesFile)
		if s.moves, err = movelog.Open(vfs.Default, path, movelog.Options{Logger: log}); err != nil {
			s.Shutdown(context.Background())
			return nil, fmt.Errorf("open the migrator's move log: %w (it is %s; docs/storage.md says how it is checked)", err, path)
		}
		// Pipelines deleted while the move log could not hear of it (a
		// crash between the deletion and its record).
		for _, p := range s.moves.Pipelines() {
			if _, ok := n.Pipeline(p); !ok {
				if err := s.moves.Forget(p); err != nil {
					s.Shutdown(context.Background())
					return nil, fmt.Errorf("forget the migration steps of the deleted pipeline %s: %w", p, err)
				}
			}
		}
		s.mig = newMigrator(n, log, localLedger{s.moves, n}, true)
		s.mig.start()
	}
	n.Metrics.Registry.MustRegister(group.NewLagCollector(s.Offsets, func(topic string, partition int32) (int64, bool) {
		return n.KnownHighWatermark(topic, partition)
	}))
	nodeRef.Store(n)
	// The processors of a cluster share their groups through this node's
	// Kafka listener, when it speaks plain Kafka (docs/processors.md).
	kafkaSeed := ""
	if s.kafkaLn != nil && !cfg.TLS.Listener(config.ListenerKafka).Enabled {
		kafkaSeed = s.kafkaLn.Addr().String()
	}
	s.procs = newProcessorRuntime(n, s.Offsets, cfg, kafkaSeed, log)
	log.Info("logs recovered", "data_dir", cfg.Node.DataDir, "duration", time.Since(t0).String(), "pipelines", len(n.Pipelines()))
	if s.nativeLn != nil || s.quicLn != nil {
		// One native server serves both: a QUIC stream is served exactly
		// like a TCP connection.
		s.native, err = native.New(n, native.Options{
			Limits:      wire.Limits{MaxEventBytes: int(cfg.Router.MaxEventBytes)},
			ServerID:    "sense/" + cfg.Node.ID,
			Admin:       s.admin(),
			Auth:        s.sec.auth,
			Authorizer:  s.sec.authz,
			AuthTimeout: cfg.Security.Timeout(),
			Logger:      log,
		})
		if err != nil {
			s.Shutdown(context.Background())
			return nil, err
		}
	}
	if s.nativeLn != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.native.Serve(s.nativeLn); err != nil && !errors.Is(err, native.ErrServerClosed) {
				s.errs <- fmt.Errorf("native listener: %w", err)
			}
		}()
	}
	if s.quicLn != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.native.Serve(s.quicLn); err != nil && !errors.Is(err, native.ErrServerClosed) {
				s.errs <- fmt.Errorf("QUIC listener: %w", err)
			}
		}()
	}
	if s.kafkaLn != nil {
		kopts := kafka.Options{
			AdvertisedAddr:   s.kafkaAdv,
			AutoCreateTopics: cfg.Kafka.AutoCreateTopics != nil && *cfg.Kafka.AutoCreateTopics,
			MaxRequestBytes:  int32(cfg.Kafka.MaxRequestBytes),
			ClusterID:        "sense-" + cfg.Node.ID,
			// Validate sets the delay; kafka.Options reads 0 as its
			// default, so "none" is passed as negative.
			GroupInitialRebalanceDelay: groupDelay(cfg.Kafka.GroupInitialRebalanceDelay),
			TransactionVersion:         cfg.Kafka.TransactionVersion,
			TransactionalIDExpiration:  time.Duration(cfg.Kafka.TransactionalIDExpiration),
			Auth:                       s.sec.auth,
			Authorizer:                 s.sec.authz,
			AuthTimeout:                cfg.Security.Timeout(),
			Admin:                      s.admin(),
			Logger:                     log,
		}
		if s.cluster != nil {
			kopts.Cluster = s.cluster
			kopts.ClusterID = "sense-cluster"
			kopts.MinInsyncReplicas = minQuorum(cfg)
		}
		s.kafka, err = kafka.New(n, s.Offsets, kopts)
		if err != nil {
			s.Shutdown(context.Background())
			return nil, err
		}
		if s.cluster != nil {
			add := s.kafka.AddPartitionsForPeer
			s.cluster.txnAdds.handler.Store(&add)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.kafka.Serve(s.kafkaLn); err != nil && !errors.Is(err, kafka.ErrServerClosed) {
				s.errs <- fmt.Errorf("kafka listener: %w", err)
			}
		}()
	}
	if err := s.procs.start(); err != nil {
		s.Shutdown(context.Background())
		return nil, fmt.Errorf("start the processors: %w", err)
	}
	s.ready.Store(true)
	return s, nil
}

// movesFile is a node alone's move log, under its data directory.
const movesFile = "moves.log"

// localLedger keeps a node alone's migrator steps in its move log. A node
// alone is never re-designated (Admin.designate), so no hub has a
// designation state.
type localLedger struct {
	*movelog.Log
	n *node.Node
}

func (localLedger) Hub(string) (meta.HubState, bool) { return meta.HubState{}, false }
func (l localLedger) Version() uint64                { return l.n.Table().Version() }

// Plan records a step, then forgets it at once if its pipeline was
// deleted meanwhile: a deletion after this check forgets it itself
// (PipelineDeleted), so no step of a deleted pipeline outlives it, to be
// taken for a step of a new pipeline of the same name.
func (l localLedger) Plan(mv meta.Move) (meta.Move, error) {
	planned, err := l.Log.Plan(mv)
	if err != nil {
		return planned, err
	}
	if _, ok := l.n.Pipeline(mv.Pipeline); !ok {
		if err := l.Log.Forget(mv.Pipeline); err != nil {
			return planned, err
		}
		return planned, fmt.Errorf("pipeline %s was deleted", mv.Pipeline)
	}
	return planned, nil
}

// admin returns the admin API of this server's node. Called once the node
// is open.
func (s *Server) admin() Admin {
	a := Admin{n: s.Node, cl: s.cluster, sec: s.sec, procs: s.procs}
	if s.moves != nil {
		a.ledger = localLedger{s.moves, s.Node}
	}
	return a
}

// nodeInfo is what this node tells its cluster peers of itself.
func (s *Server) nodeInfo() cluster.NodeInfo {
	ni := cluster.NodeInfo{ID: s.cfg.Node.ID, Started: time.Now(), Kafka: s.kafkaAdv}
	if s.nativeLn != nil {
		ni.Native = s.nativeLn.Addr().String()
	}
	if s.httpLn != nil {
		ni.HTTP = s.httpLn.Addr().String()
	}
	return ni
}

// KafkaAddr is the Kafka listener's address (nil when off).
func (s *Server) KafkaAddr() net.Addr {
	if s.kafkaLn == nil {
		return nil
	}
	return s.kafkaLn.Addr()
}

// KafkaAdvertised is the address given to Kafka clients in Metadata.
func (s *Server) KafkaAdvertised() string { return s.kafkaAdv }

// httpOptions turns the configuration into the HTTP edge's options.
func httpOptions(cfg *config.Config, log *slog.Logger) httpedge.Options {
	return httpedge.Options{
		MaxBodyBytes:        int64(cfg.HTTP.MaxBodyBytes),
		MaxEventsPerRequest: cfg.HTTP.MaxEventsPerRequest,
		MaxEventBytes:       int(cfg.Router.MaxEventBytes),
		Logger:              log,
	}
}

// lazyHandler serves the HTTP endpoints with whatever node exists yet.
func lazyHandler(n *atomic.Pointer[node.Node], ready *atomic.Bool, opts httpedge.Options, complete func(*node.Node, *httpedge.Options)) http.Handler {
	var once sync.Once
	var h http.Handler
	notReady := httpedge.Handler(nil, ready, opts)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nn := n.Load()
		if nn == nil {
			notReady.ServeHTTP(w, r)
			return
		}
		once.Do(func() {
			complete(nn, &opts)
			h = httpedge.Handler(nn, ready, opts)
		})
		h.ServeHTTP(w, r)
	})
}

// NativeAddr is the native listener's address (nil when off).
func (s *Server) NativeAddr() net.Addr {
	if s.nativeLn == nil {
		return nil
	}
	return s.nativeLn.Addr()
}

// QUICAddr is the QUIC listener's UDP address (nil when off).
func (s *Server) QUICAddr() net.Addr {
	if s.quicLn == nil {
		return nil
	}
	return s.quicLn.Addr()
}

// QUICFingerprint is the SHA-256 (hex) of the QUIC listener's certificate,
// which clients of a dev server pin, and whether that certificate was
// generated at start ("" when QUIC is off).
func (s *Server) QUICFingerprint() (sha256 string, selfSigned bool) {
	if s.quicLn == nil {
		return "", false
	}
	return s.quicLn.Fingerprint(), s.quicLn.SelfSigned()
}

// PeerStats returns the cluster transport's counters per peer (nil in dev
// mode): what this node sent to and received from each other node.
func (s *Server) PeerStats() []cluster.PeerStats {
	if s.cluster == nil {
		return nil
	}
	return s.cluster.tr.Stats()
}

// HTTPAddr is the HTTP listener's address (nil when off).
func (s *Server) HTTPAddr() net.Addr {
	if s.httpLn == nil {
		return nil
	}
	return s.httpLn.Addr()
}

// Errors reports listeners that failed after Start.
func (s *Server) Errors() <-chan error { return s.errs }

// Reload applies a new configuration's hub statuses and policies (new hubs
// may be appended) and swaps the routing table without dropping
// connections, and reloads the TLS certificates (ReloadTLS). Other changes
// need a restart; they are reported, not applied.
func (s *Server) Reload(cfg *config.Config) error {
	if !reflect.DeepEqual(cfg.Processors, s.cfg.Processors) {
		s.log.Warn("the processors: list changed; a reload does not apply it: restart the node (docs/processors.md)")
	}
	tlsErr := s.ReloadTLS()
	if err := s.reloadHubs(cfg); err != nil {
		return errors.Join(tlsErr, err)
	}
	return tlsErr
}

// ReloadTLS reads every certificate, key and CA file of the listeners and
// of the cluster transport again, from the paths given at start. New
// connections get what it read; established connections are not touched.
// A file that does not load leaves its previous certificate in use; the
// error (also logged) names it.
func (s *Server) ReloadTLS() error {
	if s.tls == nil {
		return nil
	}
	return s.tls.reload()
}

func (s *Server) reloadHubs(cfg *config.Config) error {
	if s.cluster != nil && s.cluster.meta != nil {
		if err := s.cluster.meta.reconcile(cfg); err != nil {
			return err
		}
	} else if err := s.Node.SetHubs(HubSpecs(cfg)); err != nil {
		return err
	}
	for _, p := range cfg.Pipelines {
		if err := s.Node.CreatePipeline(node.PipelineSpec{Name: p.Name, Partitions: p.Partitions, Retention: time.Duration(p.Retention),
			RetentionBytes: int64(p.RetentionBytes), DefaultPriority: p.DefaultPriority.String(), DefaultJurisdiction: p.DefaultJurisdiction,
			MaxMessageBytes: int64(p.MaxMessageBytes), CleanupPolicy: p.CleanupPolicy, DeleteRetention: time.Duration(p.DeleteRetention),
			MinCompactionLag: time.Duration(p.MinCompactionLag), MinCleanableDirtyRatio: p.MinCleanableDirtyRatio}); err != nil &&
			!errors.Is(err, node.ErrPipelineExists) {
			return err
		}
	}
	s.log.Info("configuration reloaded", "routing_table_version", s.Node.Table().Version())
	return nil
}

// Shutdown stops accepting, lets requests in flight finish (their events
// are acknowledged only once durable), syncs and closes every log.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.Store(false)
	var errs []error
	if s.cluster != nil {
		// Hand leadership over first, while the listeners still answer: a
		// client writing here gets NOT_LEADER and moves to the new leader at
		// once, rather than finding the port closed and the old leader
		// still named until an election timeout.
		t0 := time.Now()
		if left := s.cluster.host.TransferAll(2 * time.Second); left > 0 {
			s.log.Warn("stopping while still leading buffers; their followers elect a leader after the election timeout", "buffers", left)
		} else {
			s.log.Info("leadership handed over", "duration", time.Since(t0).String())
		}
	}
	if s.native != nil {
		if err := s.native.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	} else if s.nativeLn != nil {
		s.nativeLn.Close()
	}
	if s.quicLn != nil {
		// The native server has finished the streams' requests.
		s.quicLn.CloseConnections()
	}
	if s.kafka != nil {
		if err := s.kafka.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	} else if s.kafkaLn != nil {
		s.kafkaLn.Close()
	}
	if s.procs != nil {
		// Before the node and the offsets, which they read and write.
		if err := s.procs.close(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.cluster != nil && s.cluster.meta != nil {
		// Before the node: the store's applier rebuilds its routing.
		s.cluster.meta.close()
	}
	if s.mig != nil {
		s.mig.stop() // before the node, which it reads and writes
	}
	if s.Node != nil {
		if err := s.Node.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.moves != nil {
		if err := s.moves.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close the move log: %w", err))
		}
	}
	s.sec.close()
	// The store before the cluster: in a cluster it reads a raft group the
	// cluster's host owns.
	if s.Offsets != nil {
		if err := s.Offsets.Close(); err != nil && !errors.Is(err, group.ErrClosed) {
			errs = append(errs, fmt.Errorf("close the committed-offsets store: %w", err))
		}
	}
	if s.cluster != nil {
		if err := s.cluster.close(); err != nil {
			errs = append(errs, err)
		}
	}
	s.shutdownHTTP(ctx)
	s.wg.Wait()
	return errors.Join(errs...)
}

func (s *Server) shutdownHTTP(ctx context.Context) {
	if s.http != nil {
		s.http.Shutdown(ctx)
	} else if s.httpLn != nil {
		s.httpLn.Close()
	}
}

func (s *Server) closeListeners() {
	if s.httpLn != nil {
		s.httpLn.Close()
	}
	if s.nativeLn != nil {
		s.nativeLn.Close()
	}
	if s.kafkaLn != nil {
		s.kafkaLn.Close()
	}
	if s.quicLn != nil {
		s.quicLn.CloseConnections()
	}
}

// groupDelay converts kafka.group_initial_rebalance_delay for kafka.Options,
// where 0 means the default and a negative value means none.
func groupDelay(d *config.Duration) time.Duration {
	if d == nil {
		return 0
	}
	if *d == 0 {
		return -1
	}
	return time.Duration(*d)
}

// minQuorum is how many replicas hold an acknowledged batch in every hub of
// a cluster: the smallest majority of a run-time pipeline's replicas (the
// default replication in each hub). Kafka's min.insync.replicas reports
// it.
func minQuorum(cfg *config.Config) int {
	q := 0
	for _, h := range cfg.Hubs {
		r := config.Pipeline{}.ReplicationIn(len(cfg.HubNodes(h.Name)))
		if m := r/2 + 1; q == 0 || m < q {
			q = m
		}
	}
	return max(q, 1)
}
