package server_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
	"github.com/sensehq/sense/sensetest"
)

// TestClusterSecurity: a user created on one node of a 3-node cluster,
// and a token made on another, authenticate on every node (the users and
// the token key go through the cluster metadata).
func TestClusterSecurity(t *testing.T) {
	boot := filepath.Join(t.TempDir(), "boot.token")
	tok, _, err := security.LoadBootstrap(boot)
	if err != nil {
		t.Fatal(err)
	}
	c := sensetest.StartCluster(t, 3, "hubs: [{name: h, jurisdiction: '*', nodes: [n1, n2, n3]}]\n"+
		"pipelines: [{name: payments, partitions: 1}]\nsecurity: {enabled: true, bootstrap_token_file: "+boot+"}\n")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	call := func(i int, o client.Options, req admin.Request) (admin.Response, error) {
		o.Addr = c.NativeAddr(i)
		cl, err := client.Dial(ctx, o)
		if err != nil {
			return admin.Response{}, err
		}
		defer cl.Close()
		return cl.Admin(ctx, req)
	}
	// The metadata may still be seeding: retry until n1 takes the user.
	for {
		_, err := call(0, client.Options{Token: tok}, admin.CreateUser{User: "carol", Password: "pw"})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("create a user on n1: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := call(1, client.Options{Token: tok}, admin.CreateToken{User: "carol", TTL: "1h"})
	for err != nil && ctx.Err() == nil { // n2 may not have applied carol yet
		time.Sleep(50 * time.Millisecond)
		resp, err = call(1, client.Options{Token: tok}, admin.CreateToken{User: "carol", TTL: "1h"})
	}
	if err != nil {
		t.Fatalf("token on n2: %v", err)
	}
	ctok := resp.Token.Token
	// ACLs made on n3 reach every node: before them carol may do
	// nothing; after, what they grant (users: describe on the cluster;
	// payments: produce and consume), and the deny on produce made on n2
	// wins everywhere.
	if _, err := call(0, client.Options{User: "carol", Password: "pw"}, admin.ListUsers{}); result.CodeOf(err) != result.Unauthorized {
		t.Fatalf("carol lists users without an ACL: %v", err)
	}
	if _, err := call(2, client.Options{Token: tok}, admin.CreateACLs{ACLs: []admin.ACLInfo{
		{Principal: "User:carol", ResourceType: "cluster", Operation: "describe"},
		{Principal: "User:carol", ResourceType: "pipeline", Pattern: "prefixed", Name: "pay", Operation: "produce"},
		{Principal: "User:*", ResourceType: "pipeline", Name: "payments", Operation: "consume"},
		{Principal: "User:*", ResourceType: "group", Name: "*", Operation: "read"},
	}}); err != nil {
		t.Fatalf("create ACLs on n3: %v", err)
	}
	for i := range 3 {
		for {
			resp, err := call(i, client.Options{Token: tok}, admin.ListACLs{})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.ACLs) == 4 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("n%d has %d ACLs, want 4", i+1, len(resp.ACLs))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i := range 3 {
		for _, o := range []client.Options{
			{User: "carol", Password: "pw"},
			{User: "carol", Password: "pw", Mechanism: security.ScramSHA256},
			{Token: ctok},
		} {
			var err error
			for {
				if _, err = call(i, o, admin.ListUsers{}); err == nil || ctx.Err() != nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("n%d %+v: %v", i+1, o, err)
			}
		}
		// HTTP with the token.
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.HTTPAddr(i)+"/v1/admin", strings.NewReader(`{"op":"user.list"}`))
		req.Header.Set("Authorization", "Bearer "+ctok)
		hr, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		hr.Body.Close()
		if hr.StatusCode != http.StatusOK {
			t.Fatalf("n%d HTTP with a token of n2: %d", i+1, hr.StatusCode)
		}
	}
	// Kafka SCRAM on n3, with the ACLs of n3.
	kafkaRoundTrip(t, ctx, c.KafkaAddrs()[2], "payments", scram.Auth{User: "carol", Pass: "pw"}.AsSha512Mechanism())

	// A deny made on n2 wins on every node.
	if _, err := call(1, client.Options{Token: tok}, admin.CreateACLs{ACLs: []admin.ACLInfo{
		{Principal: "User:carol", ResourceType: "pipeline", Name: "payments", Operation: "produce", Permission: "deny"},
	}}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		for {
			cl, err := client.Dial(ctx, client.Options{Addr: c.NativeAddr(i), User: "carol", Password: "pw"})
			if err != nil {
				t.Fatal(err)
			}
			err = produceOne(ctx, cl, "payments")
			cl.Close()
			if result.CodeOf(err) == result.Unauthorized {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("n%d: carol still produces after the deny: %v", i+1, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
