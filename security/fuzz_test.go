package security

import (
	"encoding/json"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/vfs"
)

// The fuzz targets feed every decoder of client bytes; none may panic,
// and what they accept must be consistent.

func FuzzClientFirst(f *testing.F) {
	for _, s := range []string{"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", "y,a=x,n=x,r=abc,tokenauth=true", "p=tls-unique,,n=u,r=x", "n,,n==2C=3D,r=x",
		"n,,n==,r=x", "n,", "", "n,,n=u,r=\x00", "n,," + strings.Repeat("a", 5000)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cf, err := ParseClientFirst(b)
		if err != nil {
			return
		}
		if cf.User == "" || cf.Nonce == "" || !strings.HasSuffix(string(b), cf.Bare) || !strings.HasPrefix(string(b), cf.GS2Header) {
			t.Fatalf("accepted %q as %+v", b, cf)
		}
	})
}

func FuzzClientFinal(f *testing.F) {
	for _, s := range []string{"c=biws,r=abc,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "c=biws,r=abc,p=", "p=", ",p=x", "c=,r=,e=1,p=AA==", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cf, err := ParseClientFinal(b)
		if err != nil {
			return
		}
		if !strings.HasPrefix(string(b), cf.WithoutProof) {
			t.Fatalf("accepted %q as %+v", b, cf)
		}
	})
}

// FuzzScramServer runs a server exchange on two fuzzed client messages:
// it must fail cleanly (a fuzzer does not know the password).
func FuzzScramServer(f *testing.F) {
	f.Add([]byte("n,,n=alice,r=abc"), []byte("c=biws,r=abc,p=AAAA"))
	f.Add([]byte("n,,n=nobody,r=abc"), []byte("c=biws,r=abcdef,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	u, err := UserWithPassword("alice", "pw", MinIterations, ScramSHA256)
	if err != nil {
		f.Fatal(err)
	}
	a := NewAuthenticator(Options{Directory: newDir(f, u)})
	f.Fuzz(func(t *testing.T, first, final []byte) {
		s, _ := a.NewSession(ScramSHA256)
		if _, _, err := s.Step(first); err != nil {
			return
		}
		if _, done, err := s.Step(final); err == nil || done {
			t.Fatalf("a fuzzed exchange authenticated: %q %q", first, final)
		}
	})
}

func FuzzPlain(f *testing.F) {
	for _, s := range []string{"\x00alice\x00pw", "a\x00b\x00c", "\x00\x00", "", "\x00token\x00sense1.x.y", "\x00" + strings.Repeat("u", 300) + "\x00p"} {
		f.Add([]byte(s))
	}
	u, err := UserWithPassword("alice", "pw", MinIterations, ScramSHA256)
	if err != nil {
		f.Fatal(err)
	}
	a := NewAuthenticator(Options{Directory: newDir(f, u)})
	f.Fuzz(func(t *testing.T, b []byte) {
		az, user, pw, err := ParsePlain(b)
		if err == nil && (user == "" || pw == "" || len(az) > 255) {
			t.Fatalf("accepted %q", b)
		}
		p, err := a.Plain(b)
		if err == nil && !(p.User == "alice" && string(b) == "\x00alice\x00pw" || string(b) == "alice\x00alice\x00pw") {
			t.Fatalf("%q authenticated as %+v", b, p)
		}
	})
}

func FuzzToken(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Unix(1_800_000_000, 0)
	tok, _, err := SignToken(key, "alice", now, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{tok, tok[:len(tok)-3], "sense1.", "sense1..", "sense1.AAAA.AAAA", strings.Repeat("sense1.", 100), tok + "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, _, _, err := ParseToken(s)
		if err != nil {
			return
		}
		if ValidUserName(c.User) != nil || len(c.ID) != 32 {
			t.Fatalf("accepted %q as %+v", s, c)
		}
		// A token verifies only when its signed text is exactly what the
		// key signed: change a byte of the payload and it must not.
		if _, err := VerifyToken(key, s, now); err == nil {
			i := len(tokenPrefix)
			forged := s[:i] + string(s[i]^1) + s[i+1:]
			if _, err := VerifyToken(key, forged, now); err == nil {
				t.Fatalf("%q verified after a change of its payload", forged)
			}
		}
	})
}

// FuzzFileStore opens security files of arbitrary bodies, with a valid
// checksum so that the body decoder is what is fed: none may panic, and
// every ACL of a file that opens is valid.
func FuzzFileStore(f *testing.F) {
	for _, s := range []string{
		`{"users":[],"acls":[{"principal":"User:alice","resource_type":"pipeline","pattern":"literal","name":"p","operation":"read","permission":"allow","host":"*","jurisdictions":["SN"]}]}`,
		`{"acls":[{"principal":"User:*","resource_type":"cluster","pattern":"literal","name":"kafka-cluster","operation":"alter","permission":"deny","host":"*"}]}`,
		`{"acls":[{"principal":"User:a","resource_type":"group","pattern":"prefixed","name":"*","operation":"read","permission":"allow"}]}`,
		`{"acls":[{"operation":"fly"}]}`, `{"acls":[{"resource_type":"topic"}]}`, `{"acls":null}`, `{"acls":[null]}`,
		"", "{}", "null", "\x00\xff", strings.Repeat("[", 10000)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		img, err := json.Marshal(fileImage{Version: 1, Body: json.RawMessage(body), CRC: crc32.Checksum(body, crcTable)})
		if err != nil {
			return // not JSON: json.RawMessage refuses it
		}
		fs := vfs.NewMem()
		fs.MkdirAll("/d")
		wf, _ := fs.Create("/d/s.json")
		wf.WriteAt(img, 0)
		wf.Close()
		s, err := OpenFileStore(fs, "/d/s.json")
		if err != nil {
			return
		}
		for _, a := range s.ACLs() {
			if err := a.Validate(); err != nil {
				t.Fatalf("opened with an invalid ACL %+v: %v", a, err)
			}
		}
	})
}
