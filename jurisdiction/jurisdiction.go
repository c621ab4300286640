// Package jurisdiction maps countries to bits and back.
//
// Every event that Sense ingests carries a Mask: the set of jurisdictions
// (countries, named by ISO 3166-1 alpha-2 codes such as MA or SN) whose
// data-residency law allows the event to be stored and processed there. A
// Registry gives each configured code one bit of the mask, in the order the
// codes are listed: the first code is bit 0, the second bit 1, and so on, up
// to 64 codes. Because bit numbers follow list order, a deployment may append
// codes to its list but must never reorder or remove them once data is stored.
//
// A Registry also knows named groups (for example ECOWAS = SN, NG), which
// expand to the union of their members, and the wildcard "*", which stands
// for every registered code. Parse turns user input such as "MA, ECOWAS" into
// a Mask; Format turns a Mask back into "MA,SN,NG".
//
// The zero Mask is never valid: an event that may be stored nowhere cannot be
// stored at all. Parse and Check report it as ErrEmpty.
//
// A Registry is immutable once built and safe for concurrent use.
package jurisdiction

import (
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"strconv"
	"strings"
)

// Mask is a set of jurisdictions: bit i is set when the registry's i-th code
// is a member. The zero Mask is invalid.
type Mask uint64

// MaxCodes is the largest number of codes a Registry can hold, one per bit
// of a Mask.
const MaxCodes = 64

// maxGroupName bounds the length of a group name, so that Parse can
// upper-case a candidate name in a fixed buffer on the stack.
const maxGroupName = 64

// Wildcard is the Parse token that means every registered code.
const Wildcard = "*"

// Has reports whether bit is set in m. Bits outside 0..63 are never set.
func (m Mask) Has(bit int) bool {
	return bit >= 0 && bit < MaxCodes && m&(1<<uint(bit)) != 0
}

// Contains reports whether every jurisdiction in o is also in m.
func (m Mask) Contains(o Mask) bool {
	return o&^m == 0
}

// Count returns the number of jurisdictions in m.
func (m Mask) Count() int {
	return bits.OnesCount64(uint64(m))
}

// ErrEmpty is returned for an empty jurisdiction list, an empty element in a
// list (as in "MA,,SN"), and the zero Mask.
var ErrEmpty = errors.New("jurisdiction: empty jurisdiction set")

// ErrUnknownCode is matched, via errors.Is, by every *UnknownCodeError.
var ErrUnknownCode = errors.New("jurisdiction: unknown code")

// ErrUnknownBit is returned by Check for a mask with bits that no registered
// code owns.
var ErrUnknownBit = errors.New("jurisdiction: bit not in registry")

// UnknownCodeError reports a token that is neither a registered code, a
// group name nor "*". errors.Is(err, ErrUnknownCode) holds for it.
type UnknownCodeError struct {
	// Code is the offending token, upper-cased as Parse compares it.
	Code string
}

func (e *UnknownCodeError) Error() string {
	return fmt.Sprintf("jurisdiction: unknown code or group %q; use a registered code, a group name or %q", e.Code, Wildcard)
}

// Is makes errors.Is(err, ErrUnknownCode) true.
func (e *UnknownCodeError) Is(target error) bool {
	return target == ErrUnknownCode
}

// Registry maps ISO 3166-1 alpha-2 codes to mask bits, and group names to
// masks. Build one with New.
type Registry struct {
	codes  []string        // codes[i] owns bit i
	index  [26 * 26]uint8  // bit+1 of a code, by its two letters; 0 means absent
	groups map[string]Mask // upper-case group name -> members
	names  []string        // group names, sorted
	all    Mask            // every registered bit
}

// New builds a registry. codes lists ISO 3166-1 alpha-2 codes, two
// upper-case ASCII letters each, at most MaxCodes of them; the i-th code gets
// bit i. groups maps a group name to its member codes. A group name is 1 to
// 64 ASCII letters, digits, '_' or '-', compared without regard to case, and
// must not be a registered code; every member must be a registered code.
//
// An empty code list is rejected: a registry without codes cannot describe
// any valid Mask.
func New(codes []string, groups map[string][]string) (*Registry, error) {
	if len(codes) == 0 {
		return nil, errors.New("jurisdiction: no codes registered; list at least one ISO 3166-1 alpha-2 code such as MA")
	}
	if len(codes) > MaxCodes {
		return nil, fmt.Errorf("jurisdiction: %d codes registered, at most %d fit in a mask; remove %d of them",
			len(codes), MaxCodes, len(codes)-MaxCodes)
	}
	r := &Registry{
		codes:  slices.Clone(codes),
		groups: make(map[string]Mask, len(groups)),
	}
	for i, c := range codes {
		if !isCode(c) {
			return nil, fmt.Errorf("jurisdiction: code %q (entry %d) is not two upper-case ASCII letters; use an ISO 3166-1 alpha-2 code such as MA", c, i)
		}
		k := codeIndex(c[0], c[1])
		if prev := r.index[k]; prev != 0 {
			return nil, fmt.Errorf("jurisdiction: code %q is listed twice (entries %d and %d); remove one", c, prev-1, i)
		}
		r.index[k] = uint8(i + 1)
		r.all |= 1 << uint(i)
	}
	// Visit groups in a fixed order, so that the same bad input always
	// produces the same error.
	for _, name := range slices.Sorted(maps.Keys(groups)) {
		members := groups[name]
		if !isGroupName(name) {
			return nil, fmt.Errorf("jurisdiction: group name %q is invalid; use 1 to %d ASCII letters, digits, '_' or '-'", name, maxGroupName)
		}
		upper := strings.ToUpper(name)
		if len(upper) == 2 {
			if _, ok := r.Bit(upper); ok {
				return nil, fmt.Errorf("jurisdiction: group name %q is also a registered code; rename the group", name)
			}
		}
		if _, dup := r.groups[upper]; dup {
			return nil, fmt.Errorf("jurisdiction: group name %q is defined twice (names are compared without regard to case); merge or rename them", upper)
		}
		if len(members) == 0 {
			return nil, fmt.Errorf("jurisdiction: group %q has no members; list its codes or remove the group", name)
		}
		var m Mask
		for _, c := range members {
			bit, ok := r.Bit(c)
			if !ok {
				return nil, fmt.Errorf("jurisdiction: group %q lists %q, which is not a registered code; add it to the code list or remove it from the group", name, c)
			}
			m |= 1 << uint(bit)
		}
		r.groups[upper] = m
		r.names = append(r.names, upper)
	}
	slices.Sort(r.names)
	return r, nil
}

// Len returns the number of registered codes.
func (r *Registry) Len() int { return len(r.codes) }

// All returns the mask of every registered code, which is what "*" parses to.
func (r *Registry) All() Mask { return r.all }

// Codes returns the registered codes in bit order. The slice is a copy.
func (r *Registry) Codes() []string { return slices.Clone(r.codes) }

// Groups returns the group names, upper-cased and sorted. The slice is a copy.
func (r *Registry) Groups() []string { return slices.Clone(r.names) }

// Group returns the mask of the named group. The name is matched without
// regard to case.
func (r *Registry) Group(name string) (Mask, bool) {
	var buf [maxGroupName]byte
	if len(name) == 0 || len(name) > len(buf) {
		return 0, false
	}
	n := copy(buf[:], name)
	upperASCII(buf[:n])
	m, ok := r.groups[string(buf[:n])]
	return m, ok
}

// Code returns the code that owns bit, or false if no code does.
func (r *Registry) Code(bit int) (string, bool) {
	if bit < 0 || bit >= len(r.codes) {
		return "", false
	}
	return r.codes[bit], true
}

// Bit returns the bit owned by code, matched without regard to case, or
// false if the code is not registered.
func (r *Registry) Bit(code string) (int, bool) {
	if len(code) != 2 {
		return 0, false
	}
	a, b := toUpper(code[0]), toUpper(code[1])
	if !isUpper(a) || !isUpper(b) {
		return 0, false
	}
	v := r.index[codeIndex(a, b)]
	if v == 0 {
		return 0, false
	}
	return int(v - 1), true
}

// Contains reports whether every bit of m belongs to a registered code. It
// holds for the zero Mask, which is nevertheless invalid; use Check to test
// a mask an event will carry.
func (r *Registry) Contains(m Mask) bool {
	return m&^r.all == 0
}

// Check returns nil when m is non-zero and every bit of it belongs to a
// registered code. Otherwise it returns an error matching ErrEmpty or
// ErrUnknownBit that names the bits at fault.
func (r *Registry) Check(m Mask) error {
	if m == 0 {
		return fmt.Errorf("%w: the mask is 0; give at least one jurisdiction", ErrEmpty)
	}
	if extra := m &^ r.all; extra != 0 {
		return fmt.Errorf("%w: mask %#x sets %s, which no registered code owns (%d codes registered)",
			ErrUnknownBit, uint64(m), r.Format(extra), len(r.codes))
	}
	return nil
}

// Parse reads a comma-separated list of codes, group names and "*", with
// optional spaces or tabs around each element, matched without regard to
// case, and returns the union of their masks. "MA,SN", "ecowas", "*" and
// "MA, ECOWAS" are all valid. An unknown element yields an
// *UnknownCodeError; an empty list or empty element yields ErrEmpty.
//
// Parse does not allocate unless it returns an error.
func (r *Registry) Parse(s string) (Mask, error) {
	var m Mask
	rest := s
	for {
		tok := rest
		i := strings.IndexByte(rest, ',')
		if i >= 0 {
			tok, rest = rest[:i], rest[i+1:]
		}
		tok = trimBlank(tok)
		if tok == "" {
			if trimBlank(s) == "" {
				return 0, fmt.Errorf("%w: no jurisdiction given; use codes (MA,SN), a group name or %q", ErrEmpty, Wildcard)
			}
			return 0, fmt.Errorf("%w: empty element in %q; remove the extra comma", ErrEmpty, s)
		}
		tm, ok := r.lookup(tok)
		if !ok {
			code := []byte(tok)
			upperASCII(code)
			return 0, &UnknownCodeError{Code: string(code)}
		}
		m |= tm
		if i < 0 {
			break
		}
	}
	// Every group has a member and "*" needs at least one code, both
	// guaranteed by New, so m cannot be 0 here; the check guards that
	// invariant rather than any input.
	if m == 0 {
		return 0, fmt.Errorf("%w: %q names no jurisdiction", ErrEmpty, s)
	}
	return m, nil
}

// lookup resolves one trimmed, non-empty element of a Parse list.
func (r *Registry) lookup(tok string) (Mask, bool) {
	if tok == Wildcard {
		return r.all, true
	}
	if bit, ok := r.Bit(tok); ok {
		return 1 << uint(bit), true
	}
	return r.Group(tok)
}

// Format returns the codes in m in bit order, separated by commas, such as
// "MA,SN,NG". A bit that no registered code owns is written as "bit" and its
// number, such as "bit42", so that a corrupt or foreign mask stays visible;
// Parse rejects such names. The zero Mask formats as "".
func (r *Registry) Format(m Mask) string {
	if m == 0 {
		return ""
	}
	return string(r.AppendFormat(make([]byte, 0, 3*m.Count()), m))
}

// AppendFormat appends the text of m, as written by Format, to dst.
func (r *Registry) AppendFormat(dst []byte, m Mask) []byte {
	first := true
	for m != 0 {
		bit := bits.TrailingZeros64(uint64(m))
		m &^= 1 << uint(bit)
		if !first {
			dst = append(dst, ',')
		}
		first = false
		if bit < len(r.codes) {
			dst = append(dst, r.codes[bit]...)
		} else {
			dst = append(dst, "bit"...)
			dst = strconv.AppendInt(dst, int64(bit), 10)
		}
	}
	return dst
}

func codeIndex(a, b byte) int { return int(a-'A')*26 + int(b-'A') }

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }

func toUpper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

func upperASCII(b []byte) {
	for i, c := range b {
		b[i] = toUpper(c)
	}
}

func isCode(s string) bool {
	return len(s) == 2 && isUpper(s[0]) && isUpper(s[1])
}

func isGroupName(s string) bool {
	if len(s) == 0 || len(s) > maxGroupName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := toUpper(s[i])
		if !isUpper(c) && !('0' <= c && c <= '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func trimBlank(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
