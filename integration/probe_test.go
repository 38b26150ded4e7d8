package integration

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/nats-io/nuid"
)

// received reports whether payload arrives on sub within half a second;
// other traffic on the subject (a real agent's heartbeats) is skipped.
func received(sub *nats.Subscription, payload []byte) bool {
	deadline := time.Now().Add(500 * time.Millisecond)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		msg, err := sub.NextMsg(left)
		if err != nil {
			return false
		}
		if bytes.Equal(msg.Data, payload) {
			return true
		}
	}
}

// probe is a connection as some principal whose permission errors are
// collected, so a test can prove both ways that the server allowed or denied
// a publish or a subscription: an allowed one delivers, a denied one is
// reported by the server as a permissions violation.
type probe struct {
	nc   *nats.Conn
	errs chan error
}

func newProbe(t testing.TB, url string, kp nkeys.KeyPair, inbox string) *probe {
	t.Helper()
	p := &probe{errs: make(chan error, 256)}
	p.nc = connectKey(t, url, kp, inbox, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		p.errs <- err
	}))
	return p
}

// denied waits for the server's violation report naming subject.
func (p *probe) denied(subject string, within time.Duration) bool {
	deadline := time.After(within)
	for {
		select {
		case err := <-p.errs:
			if strings.Contains(strings.ToLower(err.Error()), "permissions violation") && strings.Contains(err.Error(), subject) {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

// canPublish reports whether a message p publishes on subject reaches a
// service subscriber (true) or is refused by the server (false).
func (p *probe) canPublish(t testing.TB, svc *nats.Conn, subject string) bool {
	t.Helper()
	sub, err := svc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	payload := []byte(nuid.Next())
	if err := p.nc.Publish(subject, payload); err != nil {
		t.Fatal(err)
	}
	_ = p.nc.Flush()
	if received(sub, payload) {
		return true
	}
	if p.denied(subject, 3*time.Second) {
		return false
	}
	t.Fatalf("publish on %s neither delivered nor denied", subject)
	return false
}

// canSubscribe reports whether p's subscription to subject receives what a
// service publishes on sample (true) or is refused by the server (false).
func (p *probe) canSubscribe(t testing.TB, svc *nats.Conn, subject, sample string) bool {
	t.Helper()
	sub, err := p.nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_ = p.nc.Flush()
	payload := []byte(nuid.Next())
	if err := svc.Publish(sample, payload); err != nil {
		t.Fatal(err)
	}
	_ = svc.Flush()
	if received(sub, payload) {
		return true
	}
	if p.denied(subject, 3*time.Second) {
		return false
	}
	t.Fatalf("subscription to %s neither delivered nor denied", subject)
	return false
}
