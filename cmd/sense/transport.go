package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/internal/tlsconf"
)

// transportFlags are the flags that choose how a client command reaches a
// node: --addr, --transport and, for TLS (QUIC, HTTPS, and TCP with
// --tls), how to trust the server and which certificate to present.
type transportFlags struct {
	addr, transport, fingerprint, caFile string
	certFile, keyFile                    string
	insecure, tls                        bool
	// creds are --user, --password, --mechanism; --token-file is the
	// root command's (cliCreds).
	creds credentials
}

func addTransportFlags(cmd *cobra.Command, f *transportFlags) {
	cmd.Flags().StringVar(&f.addr, "addr", os.Getenv("SENSE_ADDR"),
		"address of the node's listener for --transport: native "+defaultAddr+" for tcp, QUIC "+client.DefaultQUICAddr+" (UDP) for quic, HTTP "+client.DefaultHTTPAddr+" for http (https://host:port for TLS) (env SENSE_ADDR)")
	cmd.Flags().StringVar(&f.transport, "transport", envOr("SENSE_TRANSPORT", client.TransportTCP),
		"tcp (the native protocol), quic (the native protocol on QUIC streams; see docs/quic.md) or http (HTTP/2 to the HTTP listener, h2c or TLS; not idempotent, see docs/http.md) (env SENSE_TRANSPORT)")
	cmd.Flags().BoolVar(&f.tls, "tls", envBool("SENSE_TLS"),
		"tcp: speak TLS to the native listener (its tls.native.enabled; docs/security.md); implied by --ca-file, --server-fingerprint, --insecure and --cert-file (env SENSE_TLS)")
	cmd.Flags().StringVar(&f.fingerprint, "server-fingerprint", os.Getenv("SENSE_SERVER_FINGERPRINT"),
		"TLS: trust the server certificate with this SHA-256 (hex, as sense serve prints it); needed for a dev server's self-signed certificate (env SENSE_SERVER_FINGERPRINT)")
	cmd.Flags().StringVar(&f.caFile, "ca-file", os.Getenv("SENSE_CA_FILE"), "TLS: PEM file of the CA certificates that sign the server's certificate (default: the system's) (env SENSE_CA_FILE)")
	cmd.Flags().StringVar(&f.certFile, "cert-file", os.Getenv("SENSE_CERT_FILE"), "TLS: PEM file of the client certificate to present (mutual TLS: the server's tls.client_ca_file signs it); with --key-file (env SENSE_CERT_FILE)")
	cmd.Flags().StringVar(&f.keyFile, "key-file", os.Getenv("SENSE_KEY_FILE"), "TLS: PEM file of --cert-file's private key (env SENSE_KEY_FILE)")
	cmd.Flags().BoolVar(&f.insecure, "insecure", false, "TLS: accept any server certificate (encrypted, not authenticated; for experiments only)")
	f.creds = *newCredentials()
	addUserFlags(cmd, &f.creds)
}

// envBool reads a boolean variable; unset or unparsable is false.
func envBool(name string) bool {
	b, _ := strconv.ParseBool(os.Getenv(name))
	return b
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
		o.TLS = f.tls || f.fingerprint != "" || f.caFile != "" || f.insecure || f.certFile != ""
	case client.TransportQUIC, client.TransportHTTP:
		if o.Addr == "" {
			o.Addr = client.DefaultQUICAddr
			if f.transport == client.TransportHTTP {
				o.Addr = client.DefaultHTTPAddr
			}
		}
		if f.tls && f.transport == client.TransportQUIC {
			return o, fmt.Errorf("--tls: QUIC always speaks TLS; leave --tls out")
		}
		if f.tls && f.transport == client.TransportHTTP && !strings.HasPrefix(o.Addr, "https://") {
			o.Addr = "https://" + strings.TrimPrefix(o.Addr, "http://")
		}
	default:
		return o, fmt.Errorf("--transport %q: use tcp, quic or http", f.transport)
	}
	var tc *tls.Config
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return o, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return o, fmt.Errorf("--ca-file %s: no PEM certificate in it; give the PEM file of the CA that signs the server's certificate", f.caFile)
		}
		tc = &tls.Config{RootCAs: pool}
	}
	switch {
	case f.certFile != "" && f.keyFile != "":
		cert, err := tlsconf.LoadKeyPair(f.certFile, f.keyFile)
		if err != nil {
			return o, fmt.Errorf("--cert-file, --key-file: %w", err)
		}
		if tc == nil {
			tc = &tls.Config{}
		}
		tc.Certificates = []tls.Certificate{cert}
	case f.certFile != "" || f.keyFile != "":
		return o, fmt.Errorf("--cert-file and --key-file go together: give the client certificate and its private key")
	}
	o.TLSConfig = tc
	return o, nil
}
