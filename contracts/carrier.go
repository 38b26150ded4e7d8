package contracts

// HeaderCarrier carries OpenTelemetry trace context in NATS message headers.
// nats.Header is a map[string][]string, so HeaderCarrier(msg.Header) adapts
// it; it satisfies propagation.TextMapCarrier without this package importing
// OpenTelemetry. Keys are used exactly as given (case-sensitive), as NATS
// headers are.
type HeaderCarrier map[string][]string

// Get returns the first value of key.
func (c HeaderCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces key's values with value.
func (c HeaderCarrier) Set(key, value string) { c[key] = []string{value} }

// Keys lists the keys present.
func (c HeaderCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}
