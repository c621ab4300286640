package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/sensehq/sense/client"
)

// transportFlags are the flags that choose how a client command reaches a
// node: --addr, --transport and, for QUIC and HTTPS, how to trust the
// server.
type transportFlags struct {
	addr, transport, fingerprint, caFile string
	insecure                             bool
	// creds are --user, --password, --mechanism; --token-file is the
	// root command's (cliCreds).
	creds credentials
}

func addTransportFlags(cmd *cobra.Command, f *transportFlags) {
	cmd.Flags().StringVar(&f.addr, "addr", os.Getenv("SENSE_ADDR"),
		"address of the node's listener for --transport: native "+defaultAddr+" for tcp, QUIC "+client.DefaultQUICAddr+" (UDP) for quic, HTTP "+client.DefaultHTTPAddr+" for http (https://host:port for TLS) (env SENSE_ADDR)")
	cmd.Flags().StringVar(&f.transport, "transport", envOr("SENSE_TRANSPORT", client.TransportTCP),
		"tcp (the native protocol), quic (the native protocol on QUIC streams; see docs/quic.md) or http (HTTP/2 to the HTTP listener, h2c or TLS; not idempotent, see docs/http.md) (env SENSE_TRANSPORT)")
	cmd.Flags().StringVar(&f.fingerprint, "server-fingerprint", os.Getenv("SENSE_SERVER_FINGERPRINT"),
		"QUIC and HTTPS: trust the server certificate with this SHA-256 (hex, as sense serve prints it); needed for a dev server's self-signed certificate (env SENSE_SERVER_FINGERPRINT)")
	cmd.Flags().StringVar(&f.caFile, "ca-file", "", "QUIC and HTTPS: PEM file of the CA certificates that sign the server's certificate (default: the system's)")
	cmd.Flags().BoolVar(&f.insecure, "insecure", false, "QUIC and HTTPS: accept any server certificate (encrypted, not authenticated; for experiments only)")
	f.creds = *newCredentials()
	addUserFlags(cmd, &f.creds)
}

// options turns the flags into client options.
func (f *transportFlags) options(clientID string) (client.Options, error) {
	o := client.Options{Addr: f.addr, ClientID: clientID, Transport: f.transport,
		ServerFingerprint: f.fingerprint, InsecureSkipVerify: f.insecure}
	creds := f.creds
	creds.tokenFile = cliCreds.tokenFile
	if err := creds.apply(&o); err != nil {
		return o, err
	}
	switch f.transport {
	case client.TransportTCP:
		if o.Addr == "" {
			o.Addr = defaultAddr
		}
		if f.fingerprint != "" || f.caFile != "" || f.insecure {
			return o, fmt.Errorf("--server-fingerprint, --ca-file and --insecure apply to --transport quic and http only")
		}
	case client.TransportQUIC, client.TransportHTTP:
		if o.Addr == "" {
			o.Addr = client.DefaultQUICAddr
			if f.transport == client.TransportHTTP {
				o.Addr = client.DefaultHTTPAddr
			}
		}
		if f.caFile != "" {
			pem, err := os.ReadFile(f.caFile)
			if err != nil {
				return o, fmt.Errorf("--ca-file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return o, fmt.Errorf("--ca-file %s: no PEM certificate in it", f.caFile)
			}
			o.TLSConfig = &tls.Config{RootCAs: pool}
		}
	default:
		return o, fmt.Errorf("--transport %q: use tcp, quic or http", f.transport)
	}
	return o, nil
}
