package client_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/internal/tlstest"
	"github.com/sensehq/sense/sensetest"
)

// BenchmarkTLS compares produce throughput of the native protocol over
// plain TCP and over mutual TLS, in the same run: two in-process dev-mode
// servers on loopback, alike but for tls.native (TLS 1.3, client_auth
// require), with fsync never so that the transport, not the disk, is what
// is measured. 2×b.N events of 100 bytes per server, from 4 producers of
// one client (benchRate), in the order plain, tls, tls, plain; the rates
// are the means of the two rounds. tls/plain is the ratio (1 means no
// cost). Each op is one event produced on each server, twice.
func BenchmarkTLS(b *testing.B) {
	b.ReportAllocs()
	dir := b.TempDir()
	ca := tlstest.NewCA(b, dir, "bench ca")
	srvCert, cliCert := ca.Server(b, "server"), ca.Client(b, "bench")
	const body = "durability: {fsync: never}\n"
	plain := sensetest.Start(b, body)
	secure := sensetest.Start(b, body, func(c *config.Config) {
		c.TLS = config.TLS{Native: config.ListenerTLS{Enabled: config.Bool(true), CertFile: srvCert.CertFile, KeyFile: srvCert.KeyFile,
			ClientCAFile: ca.CertFile, ClientAuth: config.ClientAuthRequire}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	pc := dialOpts(b, client.Options{Addr: plain.NativeAddr().String()})
	tc := dialOpts(b, client.Options{Addr: secure.NativeAddr().String(),
		TLSConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cliCert.TLS()}}})
	value := make([]byte, 100)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	b.ResetTimer()
	// plain, tls, tls, plain: each gets the warm and the late slot once.
	plainRate := benchRate(b, ctx, pc, "plain", value)
	tlsRate := benchRate(b, ctx, tc, "tls", value)
	tlsRate = (tlsRate + benchRate(b, ctx, tc, "tls", value)) / 2
	plainRate = (plainRate + benchRate(b, ctx, pc, "plain", value)) / 2
	b.StopTimer()
	b.ReportMetric(plainRate, "plain-events/s")
	b.ReportMetric(tlsRate, "tls-events/s")
	b.ReportMetric(tlsRate/plainRate, "tls/plain")
}
