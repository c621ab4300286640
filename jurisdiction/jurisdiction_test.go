package jurisdiction

import (
	"errors"
	"strings"
	"testing"
)

// The registry of the design's example config: MA=bit 0, SN=1, NG=2, KE=3.
func exampleRegistry(t testing.TB) *Registry {
	t.Helper()
	r, err := New([]string{"MA", "SN", "NG", "KE"}, map[string][]string{
		"ECOWAS":  {"SN", "NG"},
		"maghreb": {"MA"},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

// codes64 returns 64 distinct codes: AA, AB, ..., AZ, BA, ...
func codes64() []string {
	codes := make([]string, 0, MaxCodes)
	for i := 0; i < MaxCodes; i++ {
		codes = append(codes, string([]byte{'A' + byte(i/26), 'A' + byte(i%26)}))
	}
	return codes
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name   string
		codes  []string
		groups map[string][]string
		want   string // substring of the error
	}{
		{"no codes", nil, nil, "no codes"},
		{"lower case", []string{"MA", "sn"}, nil, `"sn"`},
		{"three letters", []string{"MAR"}, nil, `"MAR"`},
		{"one letter", []string{"M"}, nil, `"M"`},
		{"digit", []string{"M1"}, nil, `"M1"`},
		{"non-ASCII", []string{"MÁ"}, nil, "two upper-case ASCII letters"},
		{"duplicate", []string{"MA", "SN", "MA"}, nil, `"MA" is listed twice (entries 0 and 2)`},
		{"too many", append(codes64(), "ZZ"), nil, "65 codes"},
		{"group is a code", []string{"MA", "SN"}, map[string][]string{"SN": {"MA"}}, `group name "SN" is also a registered code`},
		{"group is a code in lower case", []string{"MA", "SN"}, map[string][]string{"sn": {"MA"}}, `group name "sn" is also a registered code`},
		{"unknown member", []string{"MA"}, map[string][]string{"ECOWAS": {"SN"}}, `lists "SN", which is not a registered code`},
		{"empty group", []string{"MA"}, map[string][]string{"ECOWAS": {}}, `group "ECOWAS" has no members`},
		{"wildcard as group", []string{"MA"}, map[string][]string{"*": {"MA"}}, `group name "*" is invalid`},
		{"blank group name", []string{"MA"}, map[string][]string{"": {"MA"}}, `group name "" is invalid`},
		{"space in group name", []string{"MA"}, map[string][]string{"EAST AFRICA": {"MA"}}, `group name "EAST AFRICA" is invalid`},
		{"long group name", []string{"MA"}, map[string][]string{strings.Repeat("G", 65): {"MA"}}, "is invalid"},
		{"group twice", []string{"MA"}, map[string][]string{"North": {"MA"}, "NORTH": {"MA"}}, `group name "NORTH" is defined twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.codes, tt.groups)
			if err == nil {
				t.Fatalf("New succeeded with %d codes, want an error containing %q", r.Len(), tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "jurisdiction: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestNewCopiesInput(t *testing.T) {
	codes := []string{"MA", "SN"}
	r, err := New(codes, nil)
	if err != nil {
		t.Fatal(err)
	}
	codes[0] = "XX"
	if c, _ := r.Code(0); c != "MA" {
		t.Fatalf("Code(0) = %q after the caller changed its slice, want MA", c)
	}
	got := r.Codes()
	got[1] = "YY"
	if c, _ := r.Code(1); c != "SN" {
		t.Fatalf("Code(1) = %q after the caller changed Codes(), want SN", c)
	}
}

func TestRegistryAccessors(t *testing.T) {
	r := exampleRegistry(t)
	if r.Len() != 4 {
		t.Errorf("Len() = %d, want 4", r.Len())
	}
	if r.All() != 0b1111 {
		t.Errorf("All() = %#b, want 0b1111", r.All())
	}
	for i, code := range []string{"MA", "SN", "NG", "KE"} {
		if bit, ok := r.Bit(code); !ok || bit != i {
			t.Errorf("Bit(%q) = %d, %v; want %d, true", code, bit, ok, i)
		}
		if bit, ok := r.Bit(strings.ToLower(code)); !ok || bit != i {
			t.Errorf("Bit(%q) = %d, %v; want %d, true", strings.ToLower(code), bit, ok, i)
		}
		if c, ok := r.Code(i); !ok || c != code {
			t.Errorf("Code(%d) = %q, %v; want %q, true", i, c, ok, code)
		}
	}
	for _, code := range []string{"", "M", "FR", "MAR", "M1", "*"} {
		if bit, ok := r.Bit(code); ok {
			t.Errorf("Bit(%q) = %d, true; want false", code, bit)
		}
	}
	for _, bit := range []int{-1, 4, 63, 64} {
		if c, ok := r.Code(bit); ok {
			t.Errorf("Code(%d) = %q, true; want false", bit, c)
		}
	}
	if got := strings.Join(r.Groups(), " "); got != "ECOWAS MAGHREB" {
		t.Errorf("Groups() = %q, want \"ECOWAS MAGHREB\"", got)
	}
	if m, ok := r.Group("ecowas"); !ok || m != 0b0110 {
		t.Errorf("Group(ecowas) = %#b, %v; want 0b0110, true", m, ok)
	}
	if _, ok := r.Group("EU"); ok {
		t.Errorf("Group(EU) found, want missing")
	}
}

func TestParse(t *testing.T) {
	r := exampleRegistry(t)
	tests := []struct {
		in   string
		want Mask
	}{
		{"MA", 0b0001},
		{"KE", 0b1000},
		{"MA,SN", 0b0011},
		{"SN,MA", 0b0011},
		{"MA,MA", 0b0001},
		{"ma,sn", 0b0011},
		{"Ma, sN", 0b0011},
		{"ECOWAS", 0b0110},
		{"ecowas", 0b0110},
		{"Maghreb", 0b0001},
		{"*", 0b1111},
		{" * ", 0b1111},
		{"*,MA", 0b1111},
		{"MA, ECOWAS", 0b0111},
		{"MA ,\tECOWAS ", 0b0111},
		{"ECOWAS,SN", 0b0110},
	}
	for _, tt := range tests {
		got, err := r.Parse(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %#b, %v; want %#b, nil", tt.in, got, err, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	r := exampleRegistry(t)
	tests := []struct {
		in      string
		is      error
		unknown string // UnknownCodeError.Code, when is == ErrUnknownCode
	}{
		{"", ErrEmpty, ""},
		{"   ", ErrEmpty, ""},
		{",", ErrEmpty, ""},
		{"MA,", ErrEmpty, ""},
		{",MA", ErrEmpty, ""},
		{"MA,,SN", ErrEmpty, ""},
		{"MA, ,SN", ErrEmpty, ""},
		{"FR", ErrUnknownCode, "FR"},
		{"fr", ErrUnknownCode, "FR"},
		{"MA,fr", ErrUnknownCode, "FR"},
		{"MA SN", ErrUnknownCode, "MA SN"},
		{"MA;SN", ErrUnknownCode, "MA;SN"},
		{"**", ErrUnknownCode, "**"},
		{"bit0", ErrUnknownCode, "BIT0"},
		{"M", ErrUnknownCode, "M"},
		{"ECOWAS2", ErrUnknownCode, "ECOWAS2"},
		{"\xff\xfe", ErrUnknownCode, "\xff\xfe"},
		{strings.Repeat("A", 100), ErrUnknownCode, strings.Repeat("A", 100)},
	}
	for _, tt := range tests {
		m, err := r.Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) = %#b, nil; want an error", tt.in, m)
			continue
		}
		if m != 0 {
			t.Errorf("Parse(%q) returned mask %#b with its error, want 0", tt.in, m)
		}
		if !errors.Is(err, tt.is) {
			t.Errorf("Parse(%q) error %q does not match %v", tt.in, err, tt.is)
		}
		if tt.is != ErrUnknownCode {
			continue
		}
		var uerr *UnknownCodeError
		if !errors.As(err, &uerr) {
			t.Errorf("Parse(%q) error %T is not an *UnknownCodeError", tt.in, err)
			continue
		}
		if uerr.Code != tt.unknown {
			t.Errorf("Parse(%q): UnknownCodeError.Code = %q, want %q", tt.in, uerr.Code, tt.unknown)
		}
		if !strings.Contains(err.Error(), tt.unknown) && utf8Valid(tt.unknown) {
			t.Errorf("Parse(%q): error %q does not name %q", tt.in, err, tt.unknown)
		}
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "") == s }

func TestFormat(t *testing.T) {
	r := exampleRegistry(t)
	tests := []struct {
		m    Mask
		want string
	}{
		{0, ""},
		{0b0001, "MA"},
		{0b0110, "SN,NG"},
		{0b1111, "MA,SN,NG,KE"},
		{0b1001, "MA,KE"},
		{1 << 42, "bit42"},
		{1<<63 | 1<<4 | 1, "MA,bit4,bit63"},
	}
	for _, tt := range tests {
		if got := r.Format(tt.m); got != tt.want {
			t.Errorf("Format(%#x) = %q, want %q", uint64(tt.m), got, tt.want)
		}
		if got := string(r.AppendFormat([]byte("x="), tt.m)); got != "x="+tt.want {
			t.Errorf("AppendFormat(x=, %#x) = %q, want %q", uint64(tt.m), got, "x="+tt.want)
		}
	}
}

func TestFull64(t *testing.T) {
	codes := codes64()
	r, err := New(codes, map[string][]string{"LAST": {codes[63]}})
	if err != nil {
		t.Fatal(err)
	}
	if r.All() != ^Mask(0) {
		t.Fatalf("All() = %#x, want all 64 bits", uint64(r.All()))
	}
	m, err := r.Parse("last")
	if err != nil || m != 1<<63 {
		t.Fatalf("Parse(last) = %#x, %v; want 1<<63", uint64(m), err)
	}
	if got := r.Format(1 << 63); got != codes[63] {
		t.Fatalf("Format(1<<63) = %q, want %q", got, codes[63])
	}
	all, err := r.Parse(r.Format(r.All()))
	if err != nil || all != r.All() {
		t.Fatalf("Parse(Format(All())) = %#x, %v", uint64(all), err)
	}
}

func TestCheck(t *testing.T) {
	r := exampleRegistry(t)
	if err := r.Check(0b0101); err != nil {
		t.Errorf("Check(MA,NG) = %v, want nil", err)
	}
	if err := r.Check(0); !errors.Is(err, ErrEmpty) {
		t.Errorf("Check(0) = %v, want ErrEmpty", err)
	}
	err := r.Check(1<<5 | 1)
	if !errors.Is(err, ErrUnknownBit) || !strings.Contains(err.Error(), "bit5") {
		t.Errorf("Check(MA|bit5) = %v, want ErrUnknownBit naming bit5", err)
	}
	if !r.Contains(0) || !r.Contains(0b1010) || r.Contains(1<<4) {
		t.Errorf("Contains gives wrong answers")
	}
}

func TestMaskMethods(t *testing.T) {
	m := Mask(0b1011)
	if !m.Has(0) || m.Has(2) || !m.Has(3) || m.Has(-1) || m.Has(64) {
		t.Errorf("Has gives wrong answers for %#b", m)
	}
	if !m.Contains(0b0011) || m.Contains(0b0100) || !m.Contains(0) {
		t.Errorf("Contains gives wrong answers for %#b", m)
	}
	if m.Count() != 3 {
		t.Errorf("Count() = %d, want 3", m.Count())
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	r := exampleRegistry(t)
	for _, in := range []string{"MA", "ma, sn", "ECOWAS", "maghreb,KE", "*"} {
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := r.Parse(in); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("Parse(%q) allocates %v times per call, want 0", in, allocs)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	r := exampleRegistry(b)
	for _, in := range []string{"MA", "MA, ECOWAS", "*"} {
		b.Run(in, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Parse(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendFormat(b *testing.B) {
	r := exampleRegistry(b)
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = r.AppendFormat(buf[:0], 0b1111)
	}
}
