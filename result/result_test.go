package result

import (
	"errors"
	"strings"
	"testing"
)

func TestCodes(t *testing.T) {
	retriable := map[Code]bool{NoCompliantHub: true, Overloaded: true, NotReady: true, StorageError: true, Timeout: true, NotLeader: true}
	seen := map[string]bool{}
	for c := Code(0); c < numCodes; c++ {
		name := c.String()
		if name == "" || strings.ToUpper(name) != name || seen[name] {
			t.Fatalf("code %d: name %q", c, name)
		}
		seen[name] = true
		if c.Retriable() != retriable[c] {
			t.Fatalf("%s.Retriable() = %v", c, c.Retriable())
		}
		if c == OK {
			if c.Err() != nil {
				t.Fatal("OK.Err() != nil")
			}
			continue
		}
		err := error(&Error{Code: c, Message: "details"})
		if !errors.Is(err, c.Err()) || CodeOf(err) != c {
			t.Fatalf("%s: errors.Is or CodeOf fails", c)
		}
		if (&Error{Code: c}).Error() != "sense: "+name || err.Error() != "sense: "+name+": details" {
			t.Fatalf("%s: Error() = %q", c, err.Error())
		}
		wrapped := errors.Join(errors.New("ctx"), err)
		if !errors.Is(wrapped, c.Err()) || CodeOf(wrapped) != c {
			t.Fatalf("%s: wrapped error loses its code", c)
		}
		other := Code(c%(numCodes-1) + 1)
		if other != c && errors.Is(err, other.Err()) {
			t.Fatalf("%s matches %s", c, other)
		}
	}
	if Code(300).String() != "CODE_300" || Code(300).Retriable() || CodeOf(Code(300).Err()) != 300 {
		t.Fatal("unknown code")
	}
	if CodeOf(nil) != OK || CodeOf(errors.New("x")) != Unknown {
		t.Fatal("CodeOf of nil or a plain error")
	}
	if !(&Error{Code: Timeout}).Retriable() {
		t.Fatal("TIMEOUT not retriable")
	}
	// The numbers are part of the protocol.
	fixed := map[Code]uint16{OK: 0, Malformed: 2, NoCompliantHub: 5, ProducerFenced: 11, Timeout: 20}
	for c, n := range fixed {
		if uint16(c) != n {
			t.Fatalf("%s = %d, want %d", c, c, n)
		}
	}
}

// Every code has a Kafka error and an HTTP status, and the mappings that
// clients depend on hold.
func TestTable(t *testing.T) {
	for c := Code(0); c < numCodes; c++ {
		if table[c].name == "" || table[c].explain == "" || table[c].http < 200 || table[c].http > 599 {
			t.Fatalf("code %d has an incomplete row: %+v", c, table[c])
		}
	}
	for c, want := range map[Code]int16{OK: 0, Overloaded: 19, NotReady: 7, UnknownPipeline: 3, PolicyViolation: 44, CorruptBatch: 2, StorageError: 56} {
		if got := c.Kafka(); got != want {
			t.Fatalf("%s.Kafka() = %d, want %d", c, got, want)
		}
	}
	for c, want := range map[Code]int{OK: 200, Overloaded: 429, NotReady: 503, UnknownPipeline: 404, OffsetOutOfRange: 416} {
		if got := c.HTTPStatus(); got != want {
			t.Fatalf("%s.HTTPStatus() = %d, want %d", c, got, want)
		}
	}
	if Code(300).Kafka() != -1 || Code(300).HTTPStatus() != 500 || Code(300).Explain() != "CODE_300" {
		t.Fatal("unknown code mappings")
	}
	for c := Code(0); c < numCodes; c++ {
		if got, ok := Parse(c.String()); !ok || got != c {
			t.Fatalf("Parse(%q) = %d, %v", c.String(), got, ok)
		}
	}
	if _, ok := Parse("NO_SUCH_CODE"); ok {
		t.Fatal("Parse of an unknown name")
	}
	if MessageOf(New(Overloaded, "")) != Overloaded.Explain() || MessageOf(New(Overloaded, "x")) != "x" || MessageOf(errors.New("y")) != "y" {
		t.Fatal("MessageOf")
	}
}
