package admin

import (
	"encoding/base64"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/sitepeers"
)

func TestDecide(t *testing.T) {
	const site, key = "LAB", "UKEY"
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	agent := func(status string) Identity {
		return Identity{Key: key, Kind: KindAgent, ClientID: "c1", Name: "web-01", Status: status}
	}
	op := Identity{Key: key, Kind: KindOperator, Name: "alice"}
	revoked, expired, future := op, op, op
	revoked.Revoked = true
	expired.Expires = now.Add(-time.Minute)
	future.Expires = now.Add(time.Hour)

	tests := []struct {
		name    string
		id      Identity
		err     error
		wantErr bool
		pub     []string
		sub     []string
		tag     string
	}{
		{"unknown key may only enroll", Identity{}, errNoIdentity, false,
			[]string{"steward.*.enroll.UKEY"}, []string{"_INBOX.UKEY.>"}, "enroll:UKEY"},
		{"lookup failure fails closed", Identity{}, errors.New("kv down"), true, nil, nil, ""},
		{"pending agent may only enroll", agent(contracts.ClientPending), nil, false,
			[]string{"steward.*.enroll.UKEY"}, []string{"_INBOX.UKEY.>"}, "enroll:UKEY"},
		{"approved agent gets its own subjects", agent(contracts.ClientApproved), nil, false,
			[]string{"steward.LAB.agent.c1.up.>"}, []string{"steward.LAB.agent.c1.down.>", "_INBOX.c1.>"}, "agent:c1"},
		{"blocked agent refused", agent(contracts.ClientBlocked), nil, true, nil, nil, ""},
		{"unknown status refused", agent("weird"), nil, true, nil, nil, ""},
		{"operator gets its own subjects", op, nil, false,
			[]string{"steward.LAB.op.alice.up.>"}, []string{"steward.LAB.op.alice.down.>", "_INBOX.alice.>"}, "op:alice"},
		{"operator with future expiry", future, nil, false,
			[]string{"steward.LAB.op.alice.up.>"}, []string{"steward.LAB.op.alice.down.>", "_INBOX.alice.>"}, "op:alice"},
		{"revoked operator refused", revoked, nil, true, nil, nil, ""},
		{"expired operator refused", expired, nil, true, nil, nil, ""},
		{"unknown kind refused", Identity{Key: key, Kind: "robot"}, nil, true, nil, nil, ""},
		{"agent with a wildcard client id refused", Identity{Key: key, Kind: KindAgent, ClientID: "*", Status: contracts.ClientApproved}, nil, true, nil, nil, ""},
		{"operator named > refused", Identity{Key: key, Kind: KindOperator, Name: ">"}, nil, true, nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := decide(site, key, tt.id, tt.err, now)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got grant %+v, want refusal", g)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want a grant", err)
			}
			if !slices.Equal(g.Pub, tt.pub) || !slices.Equal(g.Sub, tt.sub) || g.Name != tt.tag {
				t.Fatalf("got pub %v sub %v name %q, want pub %v sub %v name %q", g.Pub, g.Sub, g.Name, tt.pub, tt.sub, tt.tag)
			}
		})
	}
}

func TestVerifyNonce(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	other, _ := nkeys.CreateUser()
	acct, _ := nkeys.CreateAccount()
	acctPub, _ := acct.PublicKey()
	nonce := "abc123"
	sign := func(k nkeys.KeyPair, n string) string {
		s, _ := k.Sign([]byte(n))
		return base64.RawURLEncoding.EncodeToString(s)
	}
	tests := []struct {
		name, key, nonce, sig string
		ok                    bool
	}{
		{"good", pub, nonce, sign(kp, nonce), true},
		{"std base64 accepted", pub, nonce, base64.StdEncoding.EncodeToString(mustSign(kp, nonce)), true},
		{"signed by another key", pub, nonce, sign(other, nonce), false},
		{"other nonce", pub, nonce, sign(kp, "zzz"), false},
		{"no key", "", nonce, sign(kp, nonce), false},
		{"not a user key", acctPub, nonce, sign(acct, nonce), false},
		{"no signature", pub, nonce, "", false},
		{"no nonce", pub, "", sign(kp, nonce), false},
		{"garbage signature", pub, nonce, "!!!", false},
	}
	for _, tt := range tests {
		err := verifyNonce(tt.key, tt.nonce, tt.sig)
		if (err == nil) != tt.ok {
			t.Errorf("%s: got err %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func mustSign(kp nkeys.KeyPair, n string) []byte {
	s, _ := kp.Sign([]byte(n))
	return s
}

func TestCheckToken(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	good := tokenRecord{
		TokenInfo:  contracts.TokenInfo{ID: "t1", Expires: now.Add(time.Hour), Uses: 2, Used: 1},
		SecretHash: hashSecret("s3cret"),
	}
	revoked, expired, spent := good, good, good
	revoked.Revoked = true
	expired.Expires = now
	spent.Used = 2
	tests := []struct {
		name   string
		rec    tokenRecord
		secret string
		want   contracts.Code
	}{
		{"valid", good, "s3cret", 0},
		{"wrong secret", good, "guess", contracts.CodeTokenInvalid},
		{"revoked", revoked, "s3cret", contracts.CodeTokenRevoked},
		{"expired at the instant", expired, "s3cret", contracts.CodeTokenExpired},
		{"spent", spent, "s3cret", contracts.CodeTokenSpent},
	}
	for _, tt := range tests {
		err := checkToken(tt.rec, tt.secret, now)
		if tt.want == 0 {
			if err != nil {
				t.Errorf("%s: got %v, want ok", tt.name, err)
			}
			continue
		}
		if got := contracts.CodeOf(err); got != tt.want {
			t.Errorf("%s: got %v (%v), want %v", tt.name, got, err, tt.want)
		}
	}
	if hashSecret("s3cret") == "s3cret" || len(hashSecret("x")) != 64 {
		t.Error("secrets must be stored as SHA-256 hex")
	}
}

// TestAgentClaimsOutlastConsent: an agent may answer a session grant for
// as long as the broker waits for the user's consent (up to
// MaxPromptTimeout, plus the broker's own 15 s), once per request; an
// operator answers no requests.
func TestAgentClaimsOutlastConsent(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	g, err := decide("LAB", "UKEY", Identity{Key: "UKEY", Kind: KindAgent, ClientID: "c1", Name: "web-01", Status: contracts.ClientApproved}, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	uc := userClaims("UKEY", g)
	if uc.Resp == nil || uc.Resp.MaxMsgs != 1 || uc.Resp.Expires < contracts.MaxPromptTimeout+15*time.Second {
		t.Fatalf("agent response permission: got %+v, want one answer per request for at least %s", uc.Resp, contracts.MaxPromptTimeout+15*time.Second)
	}
	g, err = decide("LAB", "UKEY", Identity{Key: "UKEY", Kind: KindOperator, Name: "alice"}, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if uc := userClaims("UKEY", g); uc.Resp != nil {
		t.Fatalf("operator response permission: got %+v, want none", uc.Resp)
	}
}

// A callout request is dropped once the server has stopped waiting for it,
// and only then.
func TestCalloutRequestExpiry(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, c := range []struct {
		expires int64
		want    bool
	}{
		{0, false},              // no expiry
		{now.Unix() + 5, false}, // the server waits 5 s more
		{now.Unix() + 1, false}, // one second left
		{now.Unix(), true},      // due now
		{now.Unix() - 3, true},  // given up 3 s ago
	} {
		if got := expired(c.expires, now); got != c.want {
			t.Errorf("expires %d at %d: expired %v, want %v", c.expires, now.Unix(), got, c.want)
		}
	}
}

// queuedReq is a callout request the queue only stores.
type queuedReq struct {
	micro.Request
	n int
}

// TestAuthQueueNewestFirst: workers take the newest request; when the
// newest has waited past authMaxWait every request is dropped; the worker
// count follows the pushes and the empty pops.
func TestAuthQueueNewestFirst(t *testing.T) {
	var q authQueue
	t0 := time.Unix(1_700_000_000, 0)
	for i := range authWorkers + 3 {
		start := q.push(queuedReq{n: i}, t0.Add(time.Duration(i)*time.Millisecond))
		if want := i < authWorkers; start != want {
			t.Fatalf("push %d: start a worker %v, want %v", i, start, want)
		}
	}
	now := t0.Add(time.Second)
	for want := authWorkers + 2; want >= authWorkers; want-- {
		r, ok := q.pop(now)
		if !ok || r.(queuedReq).n != want {
			t.Fatalf("pop: got %v %v, want request %d", r, ok, want)
		}
	}
	// The rest are too old: all dropped, and the worker ends.
	if r, ok := q.pop(t0.Add(authMaxWait + 50*time.Millisecond)); ok {
		t.Fatalf("a request past authMaxWait was handed out: %v", r)
	}
	if len(q.items) != 0 || q.workers != authWorkers-1 {
		t.Fatalf("after the drop: %d waiting, %d workers", len(q.items), q.workers)
	}
	if n := q.overload(now, time.Minute); n != authWorkers {
		t.Errorf("overload reported %d dropped, want %d", n, authWorkers)
	}
	if n := q.overload(now, time.Minute); n != 0 {
		t.Errorf("overload reported %d again", n)
	}
	// A request exactly authMaxWait old is still decided.
	q.push(queuedReq{n: 99}, t0)
	if r, ok := q.pop(t0.Add(authMaxWait)); !ok || r.(queuedReq).n != 99 {
		t.Errorf("request at the limit: got %v %v", r, ok)
	}
}

// TestAuthQueueBounded: a full queue drops its oldest half.
func TestAuthQueueBounded(t *testing.T) {
	var q authQueue
	now := time.Now()
	for i := range authQueueMax + 1 {
		q.push(queuedReq{n: i}, now)
	}
	if len(q.items) != authQueueMax/2+1 {
		t.Fatalf("%d waiting, want %d", len(q.items), authQueueMax/2+1)
	}
	if q.items[0].r.(queuedReq).n != authQueueMax/2 {
		t.Errorf("oldest left is %d, want %d", q.items[0].r.(queuedReq).n, authQueueMax/2)
	}
	if q.dropped != authQueueMax/2 {
		t.Errorf("dropped %d, want %d", q.dropped, authQueueMax/2)
	}
}

// TestSitePeersAsksThisService: the services that ask for site peers
// (status, replication) address this service by the name it runs as.
func TestSitePeersAsksThisService(t *testing.T) {
	if sitepeers.AdminService != ServiceName {
		t.Fatalf("sitepeers.AdminService %q, admin runs as %q", sitepeers.AdminService, ServiceName)
	}
}
