package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/internal/tlsconf"
)

// tlsRuntime holds the certificate sources of a server's listeners and
// cluster transport, one per distinct set of files, and reloads them on
// SIGHUP (Server.ReloadTLS).
type tlsRuntime struct {
	cfg *config.Config
	log *slog.Logger

	mu      sync.Mutex
	sources map[tlsconf.Files]*tlsconf.Source
	order   []*tlsconf.Source // in the order first loaded, for the log
}

func newTLSRuntime(cfg *config.Config, log *slog.Logger) *tlsRuntime {
	return &tlsRuntime{cfg: cfg, log: log, sources: map[tlsconf.Files]*tlsconf.Source{}}
}

// source returns the Source of f, loading it on first use.
func (r *tlsRuntime) source(f tlsconf.Files) (*tlsconf.Source, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.sources[f]; s != nil {
		return s, nil
	}
	s, err := tlsconf.Load(f)
	if err != nil {
		return nil, err
	}
	r.sources[f] = s
	r.order = append(r.order, s)
	return s, nil
}

// clientAuth maps the config's policy to crypto/tls's.
func clientAuth(a config.ClientAuth) tls.ClientAuthType {
	switch a {
	case config.ClientAuthVerifyIfGiven:
		return tls.VerifyClientCertIfGiven
	case config.ClientAuthRequire:
		return tls.RequireAndVerifyClientCert
	}
	return tls.NoClientCert
}

// clientHints say, per listener, how a client turns TLS on; they end the
// log line of a plain-text client refused by a TLS listener.
var clientHints = map[string]string{
	config.ListenerNative: "sense produce/consume --tls, client.Options.TLS",
	config.ListenerKafka:  "Kafka clients: security.protocol=SSL and ssl.ca.location",
	config.ListenerHTTP:   "https://",
}

// serverConfig returns the tls.Config of the named listener, or nil when
// its TLS is off.
func (r *tlsRuntime) serverConfig(name string, nextProtos []string) (*tls.Config, error) {
	l := r.cfg.TLS.Listener(name)
	if !l.Enabled {
		return nil, nil
	}
	src, err := r.source(tlsconf.Files{CertFile: l.CertFile, KeyFile: l.KeyFile, CAFile: l.ClientCAFile})
	if err != nil {
		return nil, fmt.Errorf("TLS for the %s listener: %w (tls.%s)", name, err, name)
	}
	conf, err := src.ServerConfig(tlsconf.ServerOptions{ClientAuth: clientAuth(l.ClientAuth), NextProtos: nextProtos})
	if err != nil {
		return nil, fmt.Errorf("TLS for the %s listener: %w (tls.%s)", name, err, name)
	}
	r.log.Info("TLS on", "listener", name, "cert_file", l.CertFile, "client_auth", string(l.ClientAuth), "client_ca_file", l.ClientCAFile,
		"sha256", src.Fingerprint())
	return conf, nil
}

// wrap returns ln speaking TLS when the named listener's TLS is on.
func (r *tlsRuntime) wrap(name string, ln net.Listener, nextProtos []string) (net.Listener, error) {
	conf, err := r.serverConfig(name, nextProtos)
	if err != nil || conf == nil {
		return ln, err
	}
	return tlsconf.NewListener(ln, conf, tlsconf.ListenerOptions{
		Name:             name,
		HandshakeTimeout: time.Duration(r.cfg.TLS.HandshakeTimeout),
		Hint:             clientHints[name],
		Logger:           r.log,
	}), nil
}

// reload reads every source's files again. A source whose files do not
// load keeps its certificate; the error names the file.
func (r *tlsRuntime) reload() error {
	r.mu.Lock()
	srcs := append([]*tlsconf.Source(nil), r.order...)
	r.mu.Unlock()
	var errs []error
	for _, s := range srcs {
		before := s.Fingerprint()
		if err := s.Reload(); err != nil {
			r.log.Error("TLS certificate reload failed", "cert_file", s.Files().CertFile, "ca_file", s.Files().CAFile, "err", err)
			errs = append(errs, err)
			continue
		}
		if after := s.Fingerprint(); after != before {
			r.log.Info("TLS certificate reloaded; new connections get it", "cert_file", s.Files().CertFile, "sha256", after)
		} else {
			r.log.Info("TLS files reloaded; certificate unchanged", "cert_file", s.Files().CertFile, "ca_file", s.Files().CAFile)
		}
	}
	return errors.Join(errs...)
}
