package sessions

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// TestConfigRefusesNegativeTimeouts: a negative timeout would end every
// session at the first sweep; the config refuses it, and zero takes the
// default.
func TestConfigRefusesNegativeTimeouts(t *testing.T) {
	key, _ := nkeys.CreateAccount()
	base := func() Config {
		return Config{NC: &nats.Conn{}, Site: "LAB", SiteKey: key, NoAuthz: true}
	}
	for name, set := range map[string]func(*Config){
		"OperatorTimeout": func(c *Config) { c.OperatorTimeout = -time.Second },
		"IdleTimeout":     func(c *Config) { c.IdleTimeout = -time.Second },
		"SweepEvery":      func(c *Config) { c.SweepEvery = -time.Second },
		"AssistTTL":       func(c *Config) { c.AssistTTL = -time.Second },
	} {
		c := base()
		set(&c)
		if err := c.CheckAndSetDefaults(); err == nil || !strings.Contains(err.Error(), "negative") {
			t.Errorf("%s negative: got %v, want a refusal", name, err)
		}
	}
	c := base()
	if err := c.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	if c.OperatorTimeout <= 0 || c.IdleTimeout <= 0 || c.SweepEvery <= 0 || c.AssistTTL <= 0 {
		t.Errorf("defaults not set: %+v", c)
	}
}
