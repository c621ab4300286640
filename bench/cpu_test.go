package bench

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// statLine is a /proc/<pid>/stat text with command name comm, utime 1234
// and stime 56 (fields 14 and 15).
func statLine(comm string) string {
	return "4242 (" + comm + ") S 1 4242 4242 0 -1 4194560 1523 0 0 0 1234 56 0 0 20 0 9 0 27722 1283457024 5210 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
}

func TestParseProcStat(t *testing.T) {
	for _, comm := range []string{"sense", "", "a b", "(sd-pam)", "x) S 1 2 3 4 5 6 7 8 9 10 11 12 (", ")))", "tab\there", "new\nline"} {
		utime, stime, err := parseProcStat([]byte(statLine(comm)))
		if err != nil || utime != 1234 || stime != 56 {
			t.Errorf("command name %q: utime %d stime %d err %v, want 1234 56", comm, utime, stime, err)
		}
	}
	// A real line of this kernel's, the minimum number of fields.
	if u, s, err := parseProcStat([]byte("13927 (cat) R 13925 13925 4733 0 -1 4194304 100 0 0 0 7 3")); err != nil || u != 7 || s != 3 {
		t.Errorf("utime %d stime %d err %v, want 7 3", u, s, err)
	}
	for _, bad := range []struct{ text, says string }{
		{"", "no command name"},
		{"4242 sense S 1 2", "no command name"},
		{"4242 )sense( S 1 2 3 4 5 6 7 8 9 10 11 12", "no command name"},
		{"(sense) S 1 4242 4242 0 -1 4194560 1523 0 0 0 1234 56", "pid"},
		{"x (sense) S 1 4242 4242 0 -1 4194560 1523 0 0 0 1234 56", "pid"},
		{"4242 (sense) S 1 4242 4242 0 -1 4194560 1523 0 0 0 1234", "12 fields"},
		{"4242 (sense)", "0 fields"},
		{"4242 (sense) S 1 4242 4242 0 -1 4194560 1523 0 0 0 12x4 56", `utime "12x4"`},
		{"4242 (sense) S 1 4242 4242 0 -1 4194560 1523 0 0 0 1234 -56", `stime "-56"`},
		{"4242 (sense) S 1 4242 4242 0 -1 4194560 1523 0 0 0 1234 18446744073709551616", "stime"},
	} {
		_, _, err := parseProcStat([]byte(bad.text))
		if !errors.Is(err, ErrBadProcStat) || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("parseProcStat(%q) = %v, want ErrBadProcStat saying %q", bad.text, err, bad.says)
		}
	}
}

func TestTicksToDuration(t *testing.T) {
	for _, c := range []struct {
		ticks uint64
		hz    int64
		want  time.Duration
	}{{0, 100, 0}, {1, 100, 10 * time.Millisecond}, {150, 100, 1500 * time.Millisecond}, {3, 1024, 2929687 * time.Nanosecond}} {
		if got, err := ticksToDuration(c.ticks, c.hz); err != nil || got != c.want {
			t.Errorf("ticksToDuration(%d, %d) = %v, %v; want %v", c.ticks, c.hz, got, err, c.want)
		}
	}
	if _, err := ticksToDuration(1<<63, 100); !errors.Is(err, ErrBadProcStat) {
		t.Errorf("2^63 ticks: err %v, want ErrBadProcStat", err)
	}
	if _, err := ticksToDuration(1, 0); err == nil {
		t.Error("a tick rate of 0 accepted")
	}
}

func TestProcessCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here")
	}
	if hz := clockTicks(); hz <= 0 {
		t.Fatalf("clock ticks %d per second", hz)
	}
	before, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Spin until the kernel has counted a few ticks more.
	var after CPUTime
	for deadline := time.Now().Add(10 * time.Second); after.Sub(before).Total() < 30*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatalf("CPU time went from %+v to %+v in 10s of spinning", before, after)
		}
		for i := 0; i < 1e6; i++ {
			_ = fmt.Sprint(i)
		}
		if after, err = ProcessCPU(os.Getpid()); err != nil {
			t.Fatal(err)
		}
	}
	if after.User < before.User || after.System < before.System {
		t.Errorf("CPU time went back: %+v then %+v", before, after)
	}
	const gone = 1 << 30 // above any pid_max
	if _, err := ProcessCPU(gone); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("/proc/%d/stat", gone)) {
		t.Errorf("CPU time of a pid that does not exist: err %v, want one naming its /proc file", err)
	}
}

// FuzzParseProcStat: any text parses or fails with ErrBadProcStat, and
// any command name, whatever its parentheses and blanks, leaves the
// fields after it readable.
func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte(statLine("sense")))
	f.Add([]byte(statLine("x) S 1 2 3 4 5 6 7 8 9 10 11 99 (")))
	f.Add([]byte("4242 (sense) S 1 4242 4242 0 -1 4194560 1523 0 0 0 99999999999999999999 56"))
	f.Add([]byte("4242 (sense) S 1 4242 4242 0 -1 4194560 1523 0 0 0 -1 -1"))
	f.Add([]byte("4242 (sense) S"))
	f.Add([]byte(") 4242 ("))
	f.Add([]byte("((((((((((("))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, _, err := parseProcStat(b); err != nil && !errors.Is(err, ErrBadProcStat) {
			t.Fatalf("error %v is not ErrBadProcStat", err)
		}
		utime, stime, err := parseProcStat([]byte(statLine(string(b))))
		if err != nil || utime != 1234 || stime != 56 {
			t.Fatalf("command name %q: utime %d stime %d err %v, want 1234 56", b, utime, stime, err)
		}
	})
}
