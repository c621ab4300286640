package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/sensehq/sense/jurisdiction"
)

func TestPriorityZeroValueIsLow(t *testing.T) {
	var e Event
	if e.Priority != Low {
		t.Fatalf("zero Event has priority %v, want low", e.Priority)
	}
	if !(Low < Medium && Medium < Critical) {
		t.Fatalf("priorities are not ordered by urgency")
	}
}

func TestParsePriority(t *testing.T) {
	tests := []struct {
		in   string
		want Priority
	}{
		{"low", Low},
		{"LOW", Low},
		{"medium", Medium},
		{"Medium", Medium},
		{"critical", Critical},
		{"CriTiCaL", Critical},
	}
	for _, tt := range tests {
		got, err := ParsePriority(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParsePriority(%q) = %v, %v; want %v, nil", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "urgent", "lo", "lowx", " low", "critical ", "1", "ｌow"} {
		_, err := ParsePriority(in)
		if !errors.Is(err, ErrInvalidPriority) {
			t.Errorf("ParsePriority(%q) error = %v, want ErrInvalidPriority", in, err)
			continue
		}
		for _, want := range []string{strconv.Quote(in), "low", "medium", "critical"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("ParsePriority(%q) error %q does not mention %s", in, err, want)
			}
		}
	}
}

func TestPriorityString(t *testing.T) {
	tests := []struct {
		p    Priority
		want string
	}{
		{Low, "low"},
		{Medium, "medium"},
		{Critical, "critical"},
		{3, "priority(3)"},
		{255, "priority(255)"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("Priority(%d).String() = %q, want %q", uint8(tt.p), got, tt.want)
		}
		if p, err := ParsePriority(tt.want); tt.p.Valid() && (err != nil || p != tt.p) {
			t.Errorf("ParsePriority(%q) = %v, %v; want %v", tt.want, p, err, tt.p)
		}
	}
}

func TestPriorityText(t *testing.T) {
	type doc struct {
		P Priority `json:"p"`
	}
	out, err := json.Marshal(doc{P: Critical})
	if err != nil || string(out) != `{"p":"critical"}` {
		t.Fatalf("json.Marshal = %s, %v", out, err)
	}
	var d doc
	if err := json.Unmarshal([]byte(`{"p":"Medium"}`), &d); err != nil || d.P != Medium {
		t.Fatalf("json.Unmarshal = %v, %v; want medium", d.P, err)
	}
	if err := json.Unmarshal([]byte(`{"p":"urgent"}`), &d); !errors.Is(err, ErrInvalidPriority) {
		t.Fatalf("json.Unmarshal(urgent) error = %v, want ErrInvalidPriority", err)
	}
	if _, err := json.Marshal(doc{P: 9}); !errors.Is(err, ErrInvalidPriority) {
		t.Fatalf("json.Marshal(priority 9) error = %v, want ErrInvalidPriority", err)
	}
}

func TestValidatePipelineName(t *testing.T) {
	valid := []string{"payments", "a", "A.b_c-9", "..a", strings.Repeat("x", MaxPipelineLen)}
	for _, name := range valid {
		if err := ValidatePipelineName(name); err != nil {
			t.Errorf("ValidatePipelineName(%.20q) = %v, want nil", name, err)
		}
	}
	invalid := []struct {
		name string
		want string // substring of the error
	}{
		{"", "empty"},
		{".", `"." is reserved`},
		{"..", `".." is reserved`},
		{"pay ments", `"pay ments" has ' ' at byte 3`},
		{"pay/ments", `'/' at byte 3`},
		{"paiement-é", "at byte 9"},
		{"a\x00", `'\x00' at byte 1`},
		{strings.Repeat("x", MaxPipelineLen+1), "250 bytes long, at most 249"},
	}
	for _, tt := range invalid {
		err := ValidatePipelineName(tt.name)
		if !errors.Is(err, ErrInvalidPipeline) {
			t.Errorf("ValidatePipelineName(%.20q) = %v, want ErrInvalidPipeline", tt.name, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ValidatePipelineName(%.20q) error %q does not contain %q", tt.name, err, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	good := Event{Pipeline: "payments", Mask: 0b11, Value: []byte("x")}
	tests := []struct {
		name string
		edit func(*Event)
		is   error // nil: valid
		want string
	}{
		{"valid", func(*Event) {}, nil, ""},
		{"critical", func(e *Event) { e.Priority = Critical }, nil, ""},
		{"no key or value", func(e *Event) { e.Key, e.Value = nil, nil }, nil, ""},
		{"empty pipeline", func(e *Event) { e.Pipeline = "" }, ErrInvalidPipeline, "empty"},
		{"bad pipeline", func(e *Event) { e.Pipeline = "pay ments" }, ErrInvalidPipeline, `"pay ments"`},
		{"mask 0", func(e *Event) { e.Mask = 0 }, ErrNoJurisdiction, `"payments"`},
		{"priority 3", func(e *Event) { e.Priority = 3 }, ErrInvalidPriority, "priority 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := good
			tt.edit(&e)
			err := e.Validate()
			if tt.is == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.is) {
				t.Fatalf("Validate() = %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateDoesNotAllocate(t *testing.T) {
	e := Event{Pipeline: "payments", Mask: 1, Priority: Medium}
	if allocs := testing.AllocsPerRun(100, func() {
		if err := e.Validate(); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Fatalf("Validate allocates %v times per call, want 0", allocs)
	}
}

func TestMaskHeader(t *testing.T) {
	m := jurisdiction.Mask(1<<63 | 0x0102)
	v := AppendMaskHeader([]byte("pre"), m)
	want := []byte{'p', 'r', 'e', 0x80, 0, 0, 0, 0, 0, 0x01, 0x02}
	if !bytes.Equal(v, want) {
		t.Fatalf("AppendMaskHeader = %x, want %x", v, want)
	}
	got, err := DecodeMaskHeader(v[3:])
	if err != nil || got != m {
		t.Fatalf("DecodeMaskHeader = %#x, %v; want %#x", uint64(got), err, uint64(m))
	}
	for _, n := range []int{0, 1, 7, 9, 16} {
		_, err := DecodeMaskHeader(make([]byte, n))
		if !errors.Is(err, ErrBadHeader) || !strings.Contains(err.Error(), HeaderMask) {
			t.Errorf("DecodeMaskHeader(%d bytes) error = %v, want ErrBadHeader naming %s", n, err, HeaderMask)
		}
	}
	if _, err := DecodeMaskHeader(make([]byte, MaskHeaderLen)); !errors.Is(err, ErrNoJurisdiction) {
		t.Errorf("DecodeMaskHeader(zero mask) error = %v, want ErrNoJurisdiction", err)
	}
}

func TestPriorityHeader(t *testing.T) {
	for _, p := range []Priority{Low, Medium, Critical} {
		v := AppendPriorityHeader(nil, p)
		if len(v) != PriorityHeaderLen {
			t.Fatalf("AppendPriorityHeader(%v) is %d bytes, want %d", p, len(v), PriorityHeaderLen)
		}
		got, err := DecodePriorityHeader(v)
		if err != nil || got != p {
			t.Errorf("DecodePriorityHeader(%x) = %v, %v; want %v", v, got, err, p)
		}
	}
	for _, v := range [][]byte{nil, {}, {0, 0}} {
		if _, err := DecodePriorityHeader(v); !errors.Is(err, ErrBadHeader) {
			t.Errorf("DecodePriorityHeader(%x) error = %v, want ErrBadHeader", v, err)
		}
	}
	if _, err := DecodePriorityHeader([]byte{3}); !errors.Is(err, ErrInvalidPriority) {
		t.Errorf("DecodePriorityHeader(03) error = %v, want ErrInvalidPriority", err)
	}
}

func FuzzDecodeHeaders(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, v []byte) {
		if m, err := DecodeMaskHeader(v); err == nil {
			if m == 0 || !bytes.Equal(AppendMaskHeader(nil, m), v) {
				t.Fatalf("DecodeMaskHeader(%x) = %#x does not round-trip", v, uint64(m))
			}
		}
		if p, err := DecodePriorityHeader(v); err == nil {
			if !p.Valid() || !bytes.Equal(AppendPriorityHeader(nil, p), v) {
				t.Fatalf("DecodePriorityHeader(%x) = %v does not round-trip", v, p)
			}
		}
	})
}
