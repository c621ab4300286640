package quicedge_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/edge/native/wire/quicwire"
	"github.com/sensehq/sense/edge/quicedge"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/sensetest"
	"github.com/sensehq/sense/server"
)

func dialQUIC(t *testing.T, srv *server.Server, tlsConf *tls.Config) *quic.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	qc, err := quic.DialAddr(ctx, srv.QUICAddr().String(), tlsConf, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { qc.CloseWithError(0, "") })
	return qc
}

func pinned(t *testing.T, srv *server.Server) *tls.Config {
	t.Helper()
	fp, self := srv.QUICFingerprint()
	if !self || len(fp) != 64 {
		t.Fatalf("fingerprint %q, self-signed %v", fp, self)
	}
	c, err := quicwire.ClientTLS(nil, "127.0.0.1", fp, false)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// stream opens a stream and performs the HELLO handshake on it.
func stream(t *testing.T, qc *quic.Conn) (*quicwire.StreamConn, *wire.Reader) {
	t.Helper()
	st, err := qc.OpenStreamSync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sc := quicwire.NewStreamConn(qc, st)
	sc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := sc.Write(wire.AppendHello(nil, 1, wire.Hello{MinVersion: wire.MinVersion, MaxVersion: wire.MaxVersion, ClientID: "test"})); err != nil {
		t.Fatal(err)
	}
	rd := wire.NewReader(sc)
	f, err := rd.Next()
	if err != nil || f.Type != wire.TypeHelloOK {
		t.Fatalf("handshake: %v %v", f.Type, err)
	}
	return sc, rd
}

func produce(sc *quicwire.StreamConn, rd *wire.Reader, corr uint32, pipeline string, value string) (wire.EventResult, error) {
	b := wire.AppendProduce(nil, corr, wire.ProduceHeader{Pipeline: pipeline, ProducerID: -1, Epoch: -1, BaseSequence: -1},
		[]wire.EventIn{{Value: []byte(value)}})
	if _, err := sc.Write(b); err != nil {
		return wire.EventResult{}, err
	}
	f, err := rd.Next()
	if err != nil {
		return wire.EventResult{}, err
	}
	if f.Type != wire.TypeProduceResult || f.Corr != corr {
		return wire.EventResult{}, fmt.Errorf("got %s corr %d, want PRODUCE_RESULT corr %d", f.Type, f.Corr, corr)
	}
	r, err := wire.DecodeProduceResult(f.Payload)
	if err != nil {
		return wire.EventResult{}, err
	}
	return r.At(0), nil
}

// TestStreamIsANativeConnection: a stream carries the native protocol
// from HELLO on: PING and PRODUCE are answered.
func TestStreamIsANativeConnection(t *testing.T) {
	srv := sensetest.Start(t, "", sensetest.WithQUIC())
	qc := dialQUIC(t, srv, pinned(t, srv))
	if got := qc.ConnectionState().TLS.NegotiatedProtocol; got != quicwire.ALPN {
		t.Fatalf("ALPN %q, want %q", got, quicwire.ALPN)
	}
	if v := qc.ConnectionState().TLS.Version; v != tls.VersionTLS13 {
		t.Fatalf("TLS version %#x, want 1.3", v)
	}
	sc, rd := stream(t, qc)
	if _, err := sc.Write(wire.AppendPing(nil, 7, []byte("hi"))); err != nil {
		t.Fatal(err)
	}
	if f, err := rd.Next(); err != nil || f.Type != wire.TypePong || f.Corr != 7 || string(f.Payload) != "hi" {
		t.Fatalf("PING answered with %v corr %d %q, %v", f.Type, f.Corr, f.Payload, err)
	}
	r, err := produce(sc, rd, 8, "q", "hello")
	if err != nil || r.Code != result.OK || r.Offset != 0 {
		t.Fatalf("produce: %+v %v", r, err)
	}
}

// TestFirstFrameMustBeHello: each stream has its own handshake.
func TestFirstFrameMustBeHello(t *testing.T) {
	srv := sensetest.Start(t, "", sensetest.WithQUIC())
	qc := dialQUIC(t, srv, pinned(t, srv))
	stream(t, qc) // a handshaken stream does not make others handshaken
	st, err := qc.OpenStreamSync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st.SetDeadline(time.Now().Add(10 * time.Second))
	st.Write(wire.AppendPing(nil, 3, nil))
	rd := wire.NewReader(st)
	f, err := rd.Next()
	if err != nil || f.Type != wire.TypeError {
		t.Fatalf("got %v %v, want ERROR", f.Type, err)
	}
	e, err := wire.DecodeError(f.Payload)
	if err != nil || e.Code != result.NotHandshaken {
		t.Fatalf("error %+v %v", e, err)
	}
	if _, err := rd.Next(); err == nil {
		t.Fatal("the stream stayed open after the refused handshake")
	}
}

// TestCertificateChecks: a wrong pin, no trust at all, and a wrong ALPN
// are refused in the handshake.
func TestCertificateChecks(t *testing.T) {
	srv := sensetest.Start(t, "", sensetest.WithQUIC())
	addr := srv.QUICAddr().String()
	dial := func(c *tls.Config) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		qc, err := quic.DialAddr(ctx, addr, c, nil)
		if err == nil {
			qc.CloseWithError(0, "")
		}
		return err
	}
	wrong, _ := quicwire.ClientTLS(nil, "127.0.0.1", strings.Repeat("ab", 32), false)
	if err := dial(wrong); err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Fatalf("wrong pin: %v", err)
	}
	untrusted, _ := quicwire.ClientTLS(nil, "127.0.0.1", "", false)
	if err := dial(untrusted); err == nil {
		t.Fatal("a self-signed certificate was trusted without a pin")
	}
	insecure, _ := quicwire.ClientTLS(nil, "127.0.0.1", "", true)
	if err := dial(insecure); err != nil {
		t.Fatalf("insecure: %v", err)
	}
	alpn := pinned(t, srv)
	alpn.NextProtos = []string{"h3"}
	if err := dial(alpn); err == nil {
		t.Fatal("a client without ALPN sense/1 was accepted")
	}
}

// TestManyStreamsOneKilled: 64 streams on one QUIC connection produce at
// once; one of them is reset in the middle of a PRODUCE frame. The others
// finish every request, and the connection stays usable.
func TestManyStreamsOneKilled(t *testing.T) {
	srv := sensetest.Start(t, "", sensetest.WithQUIC())
	qc := dialQUIC(t, srv, pinned(t, srv))
	const streams, perStream = 64, 20
	victim, _ := stream(t, qc)
	// Half of a PRODUCE frame, then RESET_STREAM.
	frame := wire.AppendProduce(nil, 1, wire.ProduceHeader{Pipeline: "many", ProducerID: -1, Epoch: -1, BaseSequence: -1},
		[]wire.EventIn{{Value: make([]byte, 4000)}})
	if _, err := victim.Write(frame[:len(frame)/2]); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	start := make(chan struct{})
	for i := range streams {
		sc, rd := stream(t, qc)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for k := range perStream {
				r, err := produce(sc, rd, uint32(k+1), "many", fmt.Sprintf("s%d-%d", i, k))
				if err == nil && r.Code != result.OK {
					err = fmt.Errorf("code %s", r.Code)
				}
				if err != nil {
					errs <- fmt.Errorf("stream %d request %d: %w", i, k, err)
					return
				}
			}
			sc.Close()
		}()
	}
	close(start)
	victim.Abort()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The victim's stream is gone; its reads fail.
	if _, err := victim.Read(make([]byte, 1)); err == nil {
		t.Error("the reset stream still reads")
	}
	// The connection still opens working streams.
	sc, rd := stream(t, qc)
	if r, err := produce(sc, rd, 1, "many", "after"); err != nil || r.Code != result.OK || r.Offset != streams*perStream {
		t.Fatalf("after the reset: %+v %v (want offset %d: nothing of the cut request stored)", r, err, streams*perStream)
	}
	var se *quic.StreamError
	if _, err := victim.Write([]byte{0}); !errors.As(err, &se) {
		t.Logf("write on the aborted stream: %v", err)
	}
}

// TestShutdownEndsConnections: the server's shutdown finishes and closes
// the QUIC connections; the UDP port is released.
func TestShutdownEndsConnections(t *testing.T) {
	srv := sensetest.Start(t, "", sensetest.WithQUIC())
	qc := dialQUIC(t, srv, pinned(t, srv))
	sc, rd := stream(t, qc)
	if _, err := produce(sc, rd, 1, "q", "x"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-qc.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the QUIC connection outlived the server")
	}
}

// TestDevCertificateKept: the dev certificate kept in the data directory
// gives the same fingerprint after a restart, so pinned clients keep
// working; a damaged one is replaced.
func TestDevCertificateKept(t *testing.T) {
	dir := t.TempDir()
	listen := func() string {
		t.Helper()
		l, err := quicedge.Listen("127.0.0.1:0", quicedge.Options{DevCertDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer l.CloseConnections()
		defer l.Close()
		if !l.SelfSigned() {
			t.Fatal("dev listener not self-signed")
		}
		return l.Fingerprint()
	}
	first := listen()
	if again := listen(); again != first {
		t.Fatalf("fingerprint changed across restarts: %s then %s", first, again)
	}
	st, err := os.Stat(filepath.Join(dir, "dev-quic-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("dev key mode %v, want 0600", st.Mode().Perm())
	}
	if err := os.WriteFile(filepath.Join(dir, "dev-quic-cert.pem"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if replaced := listen(); replaced == first {
		t.Fatal("a damaged kept certificate was not replaced")
	}
}
