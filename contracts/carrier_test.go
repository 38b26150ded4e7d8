package contracts

import (
	"slices"
	"testing"
)

// textMapCarrier is OpenTelemetry's propagation.TextMapCarrier, restated so
// that this package need not import OpenTelemetry.
type textMapCarrier interface {
	Get(key string) string
	Set(key, value string)
	Keys() []string
}

var _ textMapCarrier = HeaderCarrier(nil)

func TestHeaderCarrierGet(t *testing.T) {
	c := HeaderCarrier{
		"traceparent": {"00-abc-def-01", "second"},
		"tracestate":  {},
		"baggage":     {""},
	}
	tests := []struct {
		key  string
		want string
	}{
		{"traceparent", "00-abc-def-01"}, // the first of several values
		{"Traceparent", ""},              // keys are case-sensitive
		{"TRACEPARENT", ""},
		{"tracestate", ""}, // present with no values
		{"baggage", ""},
		{"missing", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := c.Get(tt.key); got != tt.want {
			t.Errorf("Get(%q): got %q, want %q", tt.key, got, tt.want)
		}
	}
	if got := HeaderCarrier(nil).Get("traceparent"); got != "" {
		t.Errorf("nil carrier Get: got %q, want %q", got, "")
	}
}

func TestHeaderCarrierSet(t *testing.T) {
	c := HeaderCarrier{"traceparent": {"old-1", "old-2"}}
	c.Set("traceparent", "new")
	c.Set("Traceparent", "other") // a different key
	c.Set("tracestate", "a=b")
	want := map[string][]string{
		"traceparent": {"new"},
		"Traceparent": {"other"},
		"tracestate":  {"a=b"},
	}
	if len(c) != len(want) {
		t.Errorf("after Set: got %v, want %v", map[string][]string(c), want)
	}
	for k, v := range want {
		if got := c[k]; !slices.Equal(got, v) {
			t.Errorf("after Set, c[%q]: got %q, want %q", k, got, v)
		}
		if got := c.Get(k); got != v[0] {
			t.Errorf("after Set, Get(%q): got %q, want %q", k, got, v[0])
		}
	}

	// Set writes through to the map it adapts, as it must for nats.Header.
	h := map[string][]string{}
	HeaderCarrier(h).Set("traceparent", "x")
	if got := h["traceparent"]; !slices.Equal(got, []string{"x"}) {
		t.Errorf("underlying map after Set: got %q, want %q", got, []string{"x"})
	}
}

func TestHeaderCarrierKeys(t *testing.T) {
	tests := []struct {
		c    HeaderCarrier
		want []string
	}{
		{nil, []string{}},
		{HeaderCarrier{}, []string{}},
		{HeaderCarrier{"a": {"1"}}, []string{"a"}},
		{HeaderCarrier{"traceparent": {"1"}, "Traceparent": {"2"}, "tracestate": nil}, []string{"Traceparent", "traceparent", "tracestate"}},
	}
	for _, tt := range tests {
		got := tt.c.Keys()
		if got == nil {
			t.Errorf("Keys() of %v: got nil, want a non-nil slice", map[string][]string(tt.c))
		}
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("Keys() of %v: got %q, want %q", map[string][]string(tt.c), got, tt.want)
		}
	}
}
