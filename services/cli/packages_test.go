package cli

import (
	"strings"
	"testing"
)

func TestParseRate(t *testing.T) {
	good := map[string]int64{
		"0": 0, "unlimited": 0, "20MB/s": 20e6, "20MiB/s": 20 << 20, "512KiB/s": 512 << 10, "1.5GB/s": 1.5e9, "4096": 4096,
	}
	for in, want := range good {
		got, err := parseRate(in)
		if err != nil || got != want {
			t.Errorf("parseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "fast", "-1MB/s", "10B/s", "MB/s", "2Mbps", "NaN", "Inf"} {
		if got, err := parseRate(in); err == nil {
			t.Errorf("parseRate(%q) = %d, nil; want an error", in, got)
		}
	}
	// An overflow is too large, not too small.
	for _, in := range []string{"99999999999999GB/s", "1e300", "9223372036854775807"} {
		if got, err := parseRate(in); err == nil || !strings.Contains(err.Error(), "too large") {
			t.Errorf("parseRate(%q) = %d, %v; want too large", in, got, err)
		}
	}
}
