// Package httpedge is Sense's HTTP listener: event ingestion and reads over
// HTTP/1.1 and HTTP/2, health and readiness probes, Prometheus metrics, and
// the JSON admin API. docs/http.md is the user's guide.
//
//	POST /v1/pipelines/{name}/events  produce: NDJSON, or the native batch encoding
//	GET  /v1/pipelines/{name}/events  read a partition as JSON, or tail it as Server-Sent Events
//	GET  /healthz    200 while the process runs
//	GET  /readyz     200 once every log is recovered, 503 before and while stopping
//	GET  /metrics    Prometheus text format, metric names prefixed sense_
//	POST /v1/admin   an admin request as JSON (see package admin)
//
// One listener serves HTTP/1.1 and HTTP/2 (see Protocols): without TLS,
// HTTP/2 is spoken by clients that use it with prior knowledge (h2c, as
// curl --http2-prior-knowledge does); with TLS, it is chosen by ALPN.
//
// A produce request is handled whole: its body is read (bounded by
// Options.MaxBodyBytes, with the node's ingress memory reserved before the
// first byte is read), every event is decoded, and only then are events
// handed to the node, so a malformed request stores nothing. Each event
// then succeeds or fails on its own, and the response carries one result
// per event. There is no idempotence over HTTP: a retried request stores
// its events again.
package httpedge

import (
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/security"
)

// maxAdminBody bounds an admin request.
const maxAdminBody = 1 << 20

// Options configure the HTTP endpoints. The zero value uses the defaults.
type Options struct {
	// MaxBodyBytes bounds a produce request's body; default 16 MiB.
	MaxBodyBytes int64
	// MaxEventsPerRequest bounds the events of one produce request;
	// default 10,000.
	MaxEventsPerRequest int
	// MaxEventBytes bounds one event (key, value, header keys and values)
	// in the native batch encoding; default 1 MiB. The node applies its
	// own limit to every event as well.
	MaxEventBytes int
	// Admin serves POST /v1/admin; nil answers it 404.
	Admin admin.Handler
	// Auth checks the credentials of requests; when it is Enabled, every
	// endpoint but /healthz and /readyz requires "Authorization: Bearer
	// <token>" (or Basic, a user and password), and answers 401 without.
	Auth *security.Authenticator
	// Authorizer is asked at produce, read and admin requests when Auth
	// is Enabled; nil allows everything.
	Authorizer security.Authorizer
	Logger     *slog.Logger
}

func (o *Options) fill() {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = int64(config.DefaultHTTPMaxBodyBytes)
	}
	if o.MaxEventsPerRequest <= 0 {
		o.MaxEventsPerRequest = config.DefaultHTTPMaxEventsPerRequest
	}
	if o.MaxEventBytes <= 0 {
		o.MaxEventBytes = int(config.DefaultMaxEventBytes)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Authorizer == nil {
		o.Authorizer = security.DefaultAuthorizer{}
	}
}

// Protocols returns the protocols the HTTP listener serves: HTTP/1.1 and,
// over TLS, HTTP/2 negotiated by ALPN; without TLS, HTTP/2 with prior
// knowledge (h2c).
func Protocols(tls bool) *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	if tls {
		p.SetHTTP2(true)
	} else {
		p.SetUnencryptedHTTP2(true)
	}
	return p
}

// handler holds what the endpoints share.
type handler struct {
	n     *node.Node
	ready *atomic.Bool
	opts  Options
	log   *slog.Logger
}

// Handler serves the HTTP endpoints of a node; n may be nil while the node
// is being opened, and ready reports readiness.
func Handler(n *node.Node, ready *atomic.Bool, opts Options) http.Handler {
	opts.fill()
	h := &handler{n: n, ready: ready, opts: opts, log: opts.Logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !h.isReady() {
			http.Error(w, "not ready: logs are being recovered or the node is stopping", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if n == nil {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		promhttp.HandlerFor(n.Metrics.Registry, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	})
	mux.HandleFunc("POST /v1/admin", func(w http.ResponseWriter, r *http.Request) {
		if !h.isReady() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		if opts.Admin == nil {
			http.NotFound(w, r)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAdminBody))
		if err != nil {
			http.Error(w, "admin request too large or unreadable: "+err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(admin.ServeContext(r.Context(), opts.Admin, body))
	})
	mux.HandleFunc("POST /v1/pipelines/{name}/events", h.produce)
	mux.HandleFunc("GET /v1/pipelines/{name}/events", h.fetch)
	if !opts.Auth.Enabled() {
		return mux
	}
	return h.authenticated(mux)
}

func (h *handler) isReady() bool { return h.n != nil && h.ready.Load() }
