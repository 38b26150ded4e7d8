package contracts

import "testing"

func TestLoopbackOnly(t *testing.T) {
	for servers, want := range map[string]bool{
		"nats://127.0.0.1:4222":                        true,
		"nats://localhost:4222":                        true,
		"tls://[::1]:4222":                             true,
		"127.0.0.5:4222":                               true,
		"nats://127.0.0.1:4222, nats://localhost:4223": true,
		"nats://nats:4222":                             false,
		"nats://10.0.0.1:4222":                         false,
		"nats://127.0.0.1:4222,nats://nats-2:4222":     false,
		"nats://0.0.0.0:4222":                          false,
		"nats://localhost.example.com:4222":            false,
	} {
		if got := LoopbackOnly(servers); got != want {
			t.Errorf("LoopbackOnly(%q): got %v, want %v", servers, got, want)
		}
	}
}
