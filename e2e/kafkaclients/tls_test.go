package kafkaclients

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/internal/tlstest"
	"github.com/sensehq/sense/sensetest"
)

// sslSense is a dev-mode server whose Kafka listener speaks TLS (Kafka's
// SSL listener), with the certificates of its clients.
type sslSense struct {
	addr            string
	ca              *tlstest.CA
	client, foreign *tlstest.Cert // signed by ca; by another CA
}

// startSenseSSL starts a server whose Kafka listener speaks TLS with the
// given client authentication (client certificates signed by s.ca).
func startSenseSSL(t *testing.T, auth config.ClientAuth) *sslSense {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "kafka ca")
	srvCert := ca.Server(t, "sense-kafka")
	s := &sslSense{ca: ca, client: ca.Client(t, "kafka-client"), foreign: tlstest.NewCA(t, dir, "other ca").Client(t, "stranger")}
	srv := sensetest.Start(t, "", func(c *config.Config) {
		c.TLS = config.TLS{Kafka: config.ListenerTLS{CertFile: srvCert.CertFile, KeyFile: srvCert.KeyFile,
			ClientCAFile: ca.CertFile, ClientAuth: auth}}
	})
	s.addr = srv.KafkaAddr().String()
	return s
}

// kcatSSL returns kcat's -X settings for SSL, with the client certificate
// when cert is set.
func (s *sslSense) kcatSSL(cert *tlstest.Cert) []string {
	args := []string{"-X", "security.protocol=ssl", "-X", "ssl.ca.location=" + s.ca.CertFile}
	if cert != nil {
		args = append(args, "-X", "ssl.certificate.location="+cert.CertFile, "-X", "ssl.key.location="+cert.KeyFile)
	}
	return args
}

// librdkafkaSSL is the same for confluent-kafka-python, as the scripts'
// SENSE_E2E_KAFKA_CONFIG.
func (s *sslSense) librdkafkaSSL(t *testing.T, cert *tlstest.Cert) string {
	m := map[string]string{"security.protocol": "ssl", "ssl.ca.location": s.ca.CertFile}
	if cert != nil {
		m["ssl.certificate.location"], m["ssl.key.location"] = cert.CertFile, cert.KeyFile
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return "SENSE_E2E_KAFKA_CONFIG=" + string(b)
}

// kgoTLS is franz-go's dial option for the listener, presenting cert when
// set.
func (s *sslSense) kgoTLS(cert *tlstest.Cert) kgo.Opt {
	c := &tls.Config{RootCAs: s.ca.Pool()}
	if cert != nil {
		c.Certificates = []tls.Certificate{cert.TLS()}
	}
	return kgo.DialTLSConfig(c)
}

// TestKcatSSL: kcat with security.protocol=ssl lists, produces to and
// consumes from the Kafka listener over TLS (the server's certificate
// verified with ssl.ca.location, its host name included); franz-go over
// TLS reads back what kcat produced. kcat in plain text is refused, and
// exits with an error rather than hanging.
func TestKcatSSL(t *testing.T) {
	kcat := needKcat(t)
	s := startSenseSSL(t, config.ClientAuthNone)
	ssl := s.kcatSSL(nil)
	kcatList(t, kcat, s.addr, ssl...)

	topic := topicName(t, "ssl")
	w := newWant(topic, 60)
	var in strings.Builder
	for i, v := range w.values {
		fmt.Fprintf(&in, "%s:%s\n", w.keys[i], v)
	}
	if _, err := kcatRun(t, kcat, in.String(), append([]string{"-b", s.addr, "-P", "-t", topic, "-K:"}, ssl...)...); err != nil {
		t.Fatalf("kcat -P over SSL: %v", err)
	}
	checkAll(t, w, records(readBack(t, s.addr, topic, s.kgoTLS(nil))))
	out, err := kcatRun(t, kcat, "", append([]string{"-b", s.addr, "-C", "-t", topic, "-o", "beginning", "-e", "-J"}, ssl...)...)
	if err != nil {
		t.Fatalf("kcat -C over SSL: %v", err)
	}
	var got []record
	for _, m := range jsonLines[kcatMessage](t, out) {
		got = append(got, record{m.Partition, m.Offset, *m.Key, *m.Payload})
	}
	checkAll(t, w, got)

	// Plain text to the SSL listener.
	if _, err := kcatRun(t, kcat, "", "-b", s.addr, "-L", "-m", "10"); err == nil {
		t.Fatal("kcat -L in plain text to the SSL listener succeeded")
	}
}

// TestKcatMutualTLS: with client_auth require, kcat with a client
// certificate of the client CA produces and consumes; without one it is
// refused.
func TestKcatMutualTLS(t *testing.T) {
	kcat := needKcat(t)
	s := startSenseSSL(t, config.ClientAuthRequire)
	ssl := s.kcatSSL(s.client)
	topic := topicName(t, "mtls")
	if _, err := kcatRun(t, kcat, "a\nb\nc\n", append([]string{"-b", s.addr, "-P", "-t", topic, "-p", "0"}, ssl...)...); err != nil {
		t.Fatalf("kcat -P with a client certificate: %v", err)
	}
	out, err := kcatRun(t, kcat, "", append([]string{"-b", s.addr, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-f", "%s\n"}, ssl...)...)
	if err != nil || string(out) != "a\nb\nc\n" {
		t.Fatalf("kcat -C with a client certificate: %q, %v", out, err)
	}
	if _, err := kcatRun(t, kcat, "", append([]string{"-b", s.addr, "-L", "-m", "10"}, s.kcatSSL(nil)...)...); err == nil {
		t.Fatal("kcat without a client certificate was served")
	}
}

// TestPythonSSL: confluent-kafka-python (idempotent producer, and a
// consumer group committing by hand) over TLS with a client certificate,
// to a listener that requires one.
func TestPythonSSL(t *testing.T) {
	needPython(t)
	s := startSenseSSL(t, config.ClientAuthRequire)
	env := []string{"PYTHONDONTWRITEBYTECODE=1", s.librdkafkaSSL(t, s.client)}
	script := func(name string, args ...string) ([]byte, error) {
		return run(t, scriptTimeout*time.Second+killAfter, "", env, systemPython, append([]string{filepath.Join("testdata", "python", name)}, args...)...)
	}
	topic := topicName(t, "ssl")
	const n = 120
	w := newWant(topic, n)
	out, err := script("produce.py", s.addr, topic, strconv.Itoa(n), topic, strconv.Itoa(scriptTimeout))
	if err != nil {
		t.Fatal(err)
	}
	var reported []record
	for _, d := range jsonLines[delivery](t, out) {
		reported = append(reported, record{d.Partition, d.Offset, d.Key, d.Value})
	}
	checkAll(t, w, reported)

	out, err = script("consume.py", s.addr, topic, topic+"-group", "eof", strconv.Itoa(scriptTimeout))
	if err != nil {
		t.Fatal(err)
	}
	run := parseConsumer(t, out)
	checkAll(t, w, run.records)

	// The same producer without its certificate is refused.
	env[1] = s.librdkafkaSSL(t, nil)
	if _, err := script("produce.py", s.addr, topic, "1", topic, "20"); err == nil {
		t.Fatal("confluent-kafka-python without a client certificate was served")
	}
}

// TestFranzGoMutualTLS: franz-go with kgo.DialTLSConfig and a client
// certificate produces and reads back; without a certificate, or with one
// of another CA, its requests fail.
func TestFranzGoMutualTLS(t *testing.T) {
	s := startSenseSSL(t, config.ClientAuthRequire)
	topic := topicName(t, "mtls")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := kgoClient(t, s.addr, s.kgoTLS(s.client), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation())
	w := newWant(topic, 90)
	var krs []*kgo.Record
	for i, v := range w.values {
		krs = append(krs, &kgo.Record{Key: []byte(w.keys[i]), Value: []byte(v)})
	}
	if err := cl.ProduceSync(ctx, krs...).FirstErr(); err != nil {
		t.Fatalf("produce over mTLS: %v", err)
	}
	checkAll(t, w, records(readBack(t, s.addr, topic, s.kgoTLS(s.client))))

	for name, cert := range map[string]*tlstest.Cert{"no certificate": nil, "another CA's certificate": s.foreign} {
		c := &tls.Config{RootCAs: s.ca.Pool()}
		if cert != nil {
			tc := cert.TLS()
			c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tc, nil }
		}
		bad := kgoClient(t, s.addr, kgo.DialTLSConfig(c), kgo.RequestRetries(0))
		pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
		err := bad.Ping(pctx)
		pcancel()
		if err == nil {
			t.Fatalf("%s: franz-go was served", name)
		}
		t.Logf("%s: %v", name, err)
	}
}
