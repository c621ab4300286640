package kafkaclients

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/internal/tlstest"
	"github.com/sensehq/sense/security"
	"github.com/sensehq/sense/sensetest"
)

// startSecureSense starts a node with security enabled and the user
// alice (password s3cret, both SCRAM mechanisms); it returns the Kafka
// address. opts change the node's config further.
func startSecureSense(t *testing.T, opts ...sensetest.Option) string {
	t.Helper()
	boot := filepath.Join(t.TempDir(), "boot.token")
	srv := sensetest.Start(t, "security: {enabled: true, bootstrap_token_file: "+boot+"}\n", opts...)
	tok, err := security.ReadTokenFile(boot)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Addr: srv.NativeAddr().String(), Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Admin(ctx, admin.CreateUser{User: "alice", Password: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	// bob may consume, never produce.
	if _, err := c.Admin(ctx, admin.CreateUser{User: "bob", Password: "b0b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Admin(ctx, admin.CreateACLs{ACLs: []admin.ACLInfo{
		{Principal: "User:alice", ResourceType: "pipeline", Name: "*", Operation: "all"},
		{Principal: "User:alice", ResourceType: "group", Name: "*", Operation: "all"},
		{Principal: "User:bob", ResourceType: "pipeline", Name: "*", Operation: "consume"},
	}}); err != nil {
		t.Fatal(err)
	}
	return srv.KafkaAddr().String()
}

// TestKcatDenied: kcat producing as a user without write on the topic
// gets TOPIC_AUTHORIZATION_FAILED, said plainly, and exits; it does not
// hang. The same user consumes.
func TestKcatDenied(t *testing.T) {
	kcat := needKcat(t)
	addr := startSecureSense(t)
	sasl := func(user, pw string) []string {
		return []string{"-b", addr, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-512",
			"-X", "sasl.username=" + user, "-X", "sasl.password=" + pw}
	}
	topic := topicName(t, "denied")
	if _, err := kcatRun(t, kcat, "one\n", append(sasl("alice", "s3cret"), "-P", "-t", topic)...); err != nil {
		t.Fatalf("alice: kcat -P: %v", err)
	}
	start := time.Now()
	out, err := kcatRun(t, kcat, "two\n", append(sasl("bob", "b0b"), "-P", "-t", topic)...)
	if err == nil {
		t.Fatalf("bob produced: %s", out)
	}
	if !strings.Contains(err.Error()+string(out), "Topic authorization failed") {
		t.Fatalf("bob's produce: %v\n%s", err, out)
	}
	t.Logf("refused in %s: %v", time.Since(start).Round(time.Millisecond), err)
	out, err = kcatRun(t, kcat, "", append(sasl("bob", "b0b"), "-C", "-t", topic, "-o", "beginning", "-e")...)
	if err != nil || strings.TrimSpace(string(out)) != "one" {
		t.Fatalf("bob's consume: %q %v", out, err)
	}
}

var saslMechanisms = []string{security.ScramSHA512, security.ScramSHA256, security.Plain}

// TestKcatSASL: kcat produces and consumes over SASL_PLAINTEXT with each
// mechanism; a wrong password is refused with librdkafka's report of the
// server's message, not a hang.
func TestKcatSASL(t *testing.T) {
	kcat := needKcat(t)
	addr := startSecureSense(t)
	sasl := func(mech, pw string) []string {
		return []string{"-b", addr, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=" + mech,
			"-X", "sasl.username=alice", "-X", "sasl.password=" + pw}
	}
	for _, mech := range saslMechanisms {
		topic := topicName(t, mech)
		in := "k1:one\nk2:two\nk3:three\n"
		if _, err := kcatRun(t, kcat, in, append(sasl(mech, "s3cret"), "-P", "-t", topic, "-K:")...); err != nil {
			t.Fatalf("%s: kcat -P: %v", mech, err)
		}
		out, err := kcatRun(t, kcat, "", append(sasl(mech, "s3cret"), "-C", "-t", topic, "-o", "beginning", "-e", "-J")...)
		if err != nil {
			t.Fatalf("%s: kcat -C: %v", mech, err)
		}
		var values []string
		for _, m := range jsonLines[kcatMessage](t, out) {
			values = append(values, *m.Payload)
		}
		if strings.Join(sortedCopy(values), ",") != "one,three,two" {
			t.Fatalf("%s: consumed %v", mech, values)
		}
		// A wrong password: librdkafka logs the server's refusal at error
		// level, and kcatRun stops it there.
		out, err = kcatRun(t, kcat, "", append(sasl(mech, "wrong"), "-L", "-J")...)
		if err == nil {
			t.Fatalf("%s: kcat -L with a wrong password succeeded: %s", mech, out)
		}
		if !strings.Contains(err.Error(), "unknown user or wrong password") && !strings.Contains(err.Error(), "Authentication failed") {
			t.Fatalf("%s: a wrong password: %v", mech, err)
		}
	}
}

// TestPythonSASL: confluent-kafka-python produces and consumes over
// SASL_PLAINTEXT with each mechanism, and reports a refusal for a wrong
// password.
func TestPythonSASL(t *testing.T) {
	needPython(t)
	addr := startSecureSense(t)
	type outcome struct {
		Produced int      `json:"produced"`
		Consumed []string `json:"consumed"`
		Error    string   `json:"error"`
	}
	for _, mech := range saslMechanisms {
		topic := topicName(t, mech)
		out, err := python(t, "sasl.py", addr, topic, "5", mech, "alice", "s3cret", strconv.Itoa(scriptTimeout))
		var o outcome
		json.Unmarshal(out, &o)
		if err != nil || o.Produced != 5 || fmt.Sprint(o.Consumed) != "[v0 v1 v2 v3 v4]" {
			t.Fatalf("%s: %+v %v\n%s", mech, o, err, out)
		}
		out, _ = python(t, "sasl.py", addr, topicName(t, mech+"-wrong"), "1", mech, "alice", "wrong", "20")
		o = outcome{}
		json.Unmarshal(out, &o)
		if o.Produced != 0 || !strings.Contains(o.Error, "Authentication failed") && !strings.Contains(o.Error, "wrong password") {
			t.Fatalf("%s with a wrong password: %+v\n%s", mech, o, out)
		}
	}
}

func sortedCopy(v []string) []string {
	v = append([]string(nil), v...)
	for i := range v {
		for j := i + 1; j < len(v); j++ {
			if v[j] < v[i] {
				v[i], v[j] = v[j], v[i]
			}
		}
	}
	return v
}

// TestSASLSSL: SCRAM-SHA-512 over TLS (Kafka's SASL_SSL), the setup of
// docs/security.md: kcat and confluent-kafka-python produce and consume,
// verifying the server's certificate; a wrong password and a plain-text
// SASL client are refused, not left hanging.
func TestSASLSSL(t *testing.T) {
	kcat := needKcat(t)
	needPython(t)
	ca := tlstest.NewCA(t, t.TempDir(), "kafka ca")
	cert := ca.Server(t, "sense-kafka")
	addr := startSecureSense(t, func(c *config.Config) {
		c.TLS = config.TLS{Kafka: config.ListenerTLS{CertFile: cert.CertFile, KeyFile: cert.KeyFile}}
	})
	saslSSL := func(pw string) []string {
		return []string{"-b", addr, "-X", "security.protocol=SASL_SSL", "-X", "ssl.ca.location=" + ca.CertFile,
			"-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=alice", "-X", "sasl.password=" + pw}
	}
	topic := topicName(t, "saslssl")
	if _, err := kcatRun(t, kcat, "k1:one\nk2:two\n", append(saslSSL("s3cret"), "-P", "-t", topic, "-K:")...); err != nil {
		t.Fatalf("kcat -P over SASL_SSL: %v", err)
	}
	out, err := kcatRun(t, kcat, "", append(saslSSL("s3cret"), "-C", "-t", topic, "-o", "beginning", "-e", "-J")...)
	if err != nil {
		t.Fatalf("kcat -C over SASL_SSL: %v", err)
	}
	var values []string
	for _, m := range jsonLines[kcatMessage](t, out) {
		values = append(values, *m.Payload)
	}
	if strings.Join(sortedCopy(values), ",") != "one,two" {
		t.Fatalf("kcat -C over SASL_SSL: consumed %v, want one and two", values)
	}
	if out, err := kcatRun(t, kcat, "", append(saslSSL("wrong"), "-L", "-J")...); err == nil {
		t.Fatalf("kcat over SASL_SSL with a wrong password: %s", out)
	}
	// SASL without TLS to the TLS listener.
	if out, err := kcatRun(t, kcat, "", "-b", addr, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-512",
		"-X", "sasl.username=alice", "-X", "sasl.password=s3cret", "-L", "-m", "10"); err == nil {
		t.Fatalf("kcat SASL_PLAINTEXT to the TLS listener: %s", out)
	}

	env, err := json.Marshal(map[string]string{"security.protocol": "SASL_SSL", "ssl.ca.location": ca.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	topic = topicName(t, "saslssl-py")
	out, err = run(t, scriptTimeout*time.Second+killAfter, "", []string{"PYTHONDONTWRITEBYTECODE=1", "SENSE_E2E_KAFKA_CONFIG=" + string(env)},
		systemPython, filepath.Join("testdata", "python", "sasl.py"), addr, topic, "5", security.ScramSHA512, "alice", "s3cret", strconv.Itoa(scriptTimeout))
	var o struct {
		Produced int      `json:"produced"`
		Consumed []string `json:"consumed"`
	}
	json.Unmarshal(out, &o)
	if err != nil || o.Produced != 5 || fmt.Sprint(o.Consumed) != "[v0 v1 v2 v3 v4]" {
		t.Fatalf("confluent-kafka-python over SASL_SSL: %+v %v\n%s", o, err, out)
	}
}
