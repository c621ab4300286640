package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Size is a number of bytes. In a config file it is written as a whole
// number of bytes ("1048576") or with a binary unit: KiB (1024), MiB, GiB or
// TiB, such as "256MiB"; the unit's case does not matter and a space may
// separate it from the number. Decimal units (KB, MB, GB, TB) and bare
// letters (K, M, G) are rejected as ambiguous: "MB" means 10^6 bytes to a
// disk vendor and 2^20 to most tools.
type Size int64

// Binary size units.
const (
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
	TiB Size = 1 << 40
)

var sizeUnits = []struct {
	name string
	size Size
}{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}, {"B", 1}}

// ParseSize reads a size as written in a config file; see Size.
func ParseSize(s string) (Size, error) {
	n, err := parseSize(s)
	if err != nil {
		return 0, fmt.Errorf("config: size %q %w", s, err)
	}
	return n, nil
}

// sizeHint ends every size error.
const sizeHint = "; write a whole number of bytes, or one with a binary unit (KiB, MiB, GiB, TiB) such as 256MiB"

func parseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && '0' <= t[i] && t[i] <= '9' {
		i++
	}
	digits, unit := t[:i], strings.TrimSpace(t[i:])
	if digits == "" {
		if strings.HasPrefix(t, "-") {
			return 0, hint("is negative" + sizeHint)
		}
		return 0, hint("is not a size" + sizeHint)
	}
	if strings.HasPrefix(unit, ".") {
		return 0, hint("is not a whole number; use a smaller unit, such as 1536MiB for 1.5GiB")
	}
	mult := Size(1)
	if unit != "" {
		mult = 0
		for _, u := range sizeUnits {
			if strings.EqualFold(unit, u.name) {
				mult = u.size
				break
			}
		}
	}
	if mult == 0 {
		switch strings.ToUpper(unit) {
		case "K", "KB", "M", "MB", "G", "GB", "T", "TB":
			return 0, hint(fmt.Sprintf("uses %q, which is ambiguous (decimal or binary?); write %ciB for powers of 1024, or a plain number of bytes",
				unit, unicodeUpper(unit[0])))
		}
		return 0, hint(fmt.Sprintf("has unknown unit %q%s", unit, sizeHint))
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > math.MaxInt64/int64(mult) {
		return 0, hint("is too large; sizes must stay below 8EiB")
	}
	return Size(n) * mult, nil
}

func unicodeUpper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// String writes s with the largest binary unit that divides it exactly, such
// as "256MiB", or as a plain number of bytes; ParseSize reads it back.
func (s Size) String() string {
	if s != 0 {
		for _, u := range sizeUnits[:len(sizeUnits)-1] {
			if s%u.size == 0 {
				return strconv.FormatInt(int64(s/u.size), 10) + u.name
			}
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// MarshalText writes s as String does.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a size as ParseSize does.
func (s *Size) UnmarshalText(text []byte) error {
	v, err := ParseSize(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Duration is a length of time. In a config file it is written as a Go
// duration ("24h", "90m", "1h30m"), as whole days ("7d", optionally followed
// by a Go duration: "1d12h"), or as "0". Negative durations are rejected.
type Duration time.Duration

const day = 24 * time.Hour

// ParseDuration reads a duration as written in a config file; see Duration.
// The empty string reads as 0.
func ParseDuration(s string) (Duration, error) {
	d, err := parseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("config: duration %q %w", s, err)
	}
	return d, nil
}

const durationHint = "; write a duration such as 24h, 90m, 1h30m or 7d"

func parseDuration(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" || t == "0" {
		return 0, nil
	}
	if strings.HasPrefix(t, "-") {
		return 0, hint("is negative" + durationHint)
	}
	var total time.Duration
	if i := strings.IndexByte(t, 'd'); i >= 0 {
		days, err := strconv.ParseUint(t[:i], 10, 64)
		if err != nil || !allDigits(t[:i]) {
			return 0, hint("is not a duration; days must be a whole number such as 7d (write 36h for a day and a half)")
		}
		if days > uint64(math.MaxInt64/int64(day)) {
			return 0, hint("is too long; durations must stay below 292 years")
		}
		total = time.Duration(days) * day
		t = t[i+1:]
		if t == "" {
			return Duration(total), nil
		}
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, hintWrap("is not a duration"+durationHint, err)
	}
	if d < 0 {
		return 0, hint("is negative" + durationHint)
	}
	if total > math.MaxInt64-d {
		return 0, hint("is too long; durations must stay below 292 years")
	}
	return Duration(total + d), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// String writes d as whole days ("7d") when it is a multiple of 24 hours,
// "0" when it is zero, and as a Go duration otherwise; ParseDuration reads
// it back.
func (d Duration) String() string {
	switch {
	case d == 0:
		return "0"
	case d > 0 && time.Duration(d)%day == 0:
		return strconv.FormatInt(int64(time.Duration(d)/day), 10) + "d"
	}
	return time.Duration(d).String()
}

// MarshalText writes d as String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a duration as ParseDuration does.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := ParseDuration(string(text))
	if err != nil {
		return err
	}
	*d = v
	return nil
}
