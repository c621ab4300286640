package config

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		err  string // part of the error, "" for none
	}{
		{"0", 0, ""},
		{"1048576", MiB, ""},
		{"512KiB", 512 * KiB, ""},
		{"256MiB", 256 * MiB, ""},
		{"256 MiB", 256 * MiB, ""},
		{"1gib", GiB, ""},
		{"2TiB", 2 * TiB, ""},
		{"10B", 10, ""},
		{" 7 ", 7, ""},
		{"512MB", 0, `uses "MB", which is ambiguous`},
		{"1kb", 0, "write KiB"},
		{"1G", 0, "write GiB"},
		{"1.5GiB", 0, "1536MiB"},
		{"-1", 0, "is negative"},
		{"", 0, "is not a size"},
		{"MiB", 0, "is not a size"},
		{"12XB", 0, `unknown unit "XB"`},
		{"9223372036854775807", math.MaxInt64, ""},
		{"9223372036854775808", 0, "too large"},
		{"8388608TiB", 0, "too large"},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseSize(%q) = %d, %v; want an error with %q", tt.in, got, err, tt.err)
		case tt.err != "" && !strings.HasPrefix(err.Error(), "config: size "):
			t.Errorf("ParseSize(%q) error %q lacks the package prefix", tt.in, err)
		}
	}
}

func TestSizeString(t *testing.T) {
	for s, want := range map[Size]string{0: "0", 1: "1", 1000: "1000", KiB: "1KiB", 1536 * KiB: "1536KiB",
		128 * MiB: "128MiB", GiB: "1GiB", 3 * TiB: "3TiB", -2 * MiB: "-2MiB"} {
		if got := s.String(); got != want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(s), got, want)
		}
		if s < 0 {
			continue
		}
		var back Size
		if err := back.UnmarshalText([]byte(s.String())); err != nil || back != s {
			t.Errorf("UnmarshalText(%q) = %d, %v; want %d", s.String(), back, err, int64(s))
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"", 0, ""},
		{"0", 0, ""},
		{"24h", 24 * time.Hour, ""},
		{"90m", 90 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"7d", 7 * 24 * time.Hour, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"0d", 0, ""},
		{"1.5d", 0, "whole number"},
		{"d", 0, "whole number"},
		{"-1h", 0, "is negative"},
		{"1d-1h", 0, "is negative"},
		{"soon", 0, "such as 24h"},
		{"10", 0, "such as 24h"},
		{"106752d", 0, "too long"},
		{"106751d24h", 0, "too long"},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		switch {
		case tt.err == "" && (err != nil || time.Duration(got) != tt.want):
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, time.Duration(got), err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseDuration(%q) = %v, %v; want an error with %q", tt.in, time.Duration(got), err, tt.err)
		}
	}
	for d, want := range map[Duration]string{0: "0", Duration(48 * time.Hour): "2d", Duration(36 * time.Hour): "36h0m0s", Duration(time.Second): "1s"} {
		if got := d.String(); got != want {
			t.Errorf("Duration(%v).String() = %q, want %q", time.Duration(d), got, want)
		}
		var back Duration
		if err := back.UnmarshalText([]byte(want)); err != nil || back != d {
			t.Errorf("UnmarshalText(%q) = %v, %v", want, back, err)
		}
	}
}

func TestEnumsText(t *testing.T) {
	for _, s := range []HubStatus{HubUp, HubDraining, HubDown} {
		b, err := s.MarshalText()
		var back HubStatus
		if err != nil || back.UnmarshalText(b) != nil || back != s {
			t.Errorf("HubStatus %v does not round-trip: %q, %v", s, b, err)
		}
	}
	if _, err := HubStatus(7).MarshalText(); err == nil {
		t.Error("HubStatus(7).MarshalText succeeded")
	}
	for _, f := range []LogFormat{LogAuto, LogJSON, LogText} {
		b, err := f.MarshalText()
		var back LogFormat
		if err != nil || back.UnmarshalText(b) != nil || back != f {
			t.Errorf("LogFormat %v does not round-trip: %q, %v", f, b, err)
		}
	}
	if _, err := ParseLogFormat("xml"); err == nil {
		t.Error(`ParseLogFormat("xml") succeeded`)
	}
}
