package jurisdiction

import (
	"errors"
	"testing"
)

// FuzzParse checks that Parse never panics, that any mask it accepts is a
// non-empty subset of the registry, and that Format and Parse agree.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"", " ", ",", ",,", "*", "**", "*,*", "MA", "ma", "MA,SN", "MA, ECOWAS",
		"ecowas", "MA,,SN", "MA,", " ,MA", "FR", "bit42", "\t*\t", "M", "MAR",
		"\x00", "\xff", "é", "ECOWAS,maghreb,KE,ng",
	} {
		f.Add(seed)
	}
	r, err := New([]string{"MA", "SN", "NG", "KE"}, map[string][]string{
		"ECOWAS":  {"SN", "NG"},
		"MAGHREB": {"MA"},
		"EU":      {"KE"}, // a two-letter group that is not a code
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := r.Parse(s)
		if err != nil {
			if m != 0 {
				t.Fatalf("Parse(%q) returned mask %#x with error %v", s, uint64(m), err)
			}
			if !errors.Is(err, ErrEmpty) && !errors.Is(err, ErrUnknownCode) {
				t.Fatalf("Parse(%q) error %v matches neither ErrEmpty nor ErrUnknownCode", s, err)
			}
			return
		}
		if m == 0 {
			t.Fatalf("Parse(%q) = 0 without an error", s)
		}
		if !r.All().Contains(m) {
			t.Fatalf("Parse(%q) = %#x, outside All() = %#x", s, uint64(m), uint64(r.All()))
		}
		if err := r.Check(m); err != nil {
			t.Fatalf("Check(Parse(%q)) = %v", s, err)
		}
		text := r.Format(m)
		back, err := r.Parse(text)
		if err != nil || back != m {
			t.Fatalf("Parse(Format(%#x) = %q) = %#x, %v", uint64(m), text, uint64(back), err)
		}
	})
}
