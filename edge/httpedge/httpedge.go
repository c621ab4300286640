// Package httpedge is Sense's HTTP listener: health and readiness probes,
// Prometheus metrics, and the JSON admin API. (Event ingestion over HTTP/1.1
// and HTTP/2 joins it later.)
//
//	GET  /healthz    200 while the process runs
//	GET  /readyz     200 once every log is recovered, 503 before and while stopping
//	GET  /metrics    Prometheus text format, metric names prefixed sense_
//	POST /v1/admin   an admin request as JSON (see node.AdminRequest)
package httpedge

import (
	"io"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sensehq/sense/node"
)

// maxAdminBody bounds an admin request.
const maxAdminBody = 1 << 20

// Handler serves the HTTP endpoints of a node. ready reports readiness.
func Handler(n *node.Node, ready *atomic.Bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if n == nil || !ready.Load() {
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
		if n == nil || !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAdminBody))
		if err != nil {
			http.Error(w, "admin request too large or unreadable: "+err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(n.Admin(body))
	})
	return mux
}
