package site

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
)

// TestLinkShape: a child site enforces its link's shape itself, whatever
// its parent's server does. A plain server in the parent's place, allowing
// everything, gets the child's join requests (steward.PAR.site.CHD.>) but
// cannot reach the child's operator endpoints as its administrator, and
// receives none of the child's own traffic: not its subjects, not its
// JetStream calls, not the answers to its operators (an enrollment token's
// secret among them).
func TestLinkShape(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	hub, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		LeafNode: server.LeafNodeOpts{Host: "127.0.0.1", Port: port}})
	if err != nil {
		t.Fatal(err)
	}
	go hub.Start()
	t.Cleanup(hub.Shutdown)
	if !hub.ReadyForConnections(5 * time.Second) {
		t.Fatal("hub not ready")
	}
	// Its own requests are not the child's traffic, nor their answers.
	nc, err := nats.Connect(hub.ClientURL(), nats.NoEcho(), nats.CustomInboxPrefix("hub-inbox"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var joins, leaked atomic.Int64
	var leakedSubj atomic.Value
	if _, err := nc.Subscribe("steward.PAR.site.CHD.>", func(*nats.Msg) { joins.Add(1) }); err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{"steward.CHD.>", "$JS.>", "$KV.>", "$SRV.>", "_INBOX.>"} {
		if _, err := nc.Subscribe(subj, func(m *nats.Msg) { leaked.Add(1); leakedSubj.Store(m.Subject) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	tok := contracts.SiteToken{Site: "PAR", SiteKey: opub, ID: uuid.NewString(), Secret: "x"}
	chd := startSite(t, Config{DataDir: t.TempDir(), Site: "CHD", Parent: "nats://127.0.0.1:" + strconv.Itoa(port), ParentToken: tok.String()})
	wait(t, "the child's join request through the link", func() error {
		if joins.Load() == 0 {
			return errors.New("none yet")
		}
		return nil
	})

	subj, _ := contracts.OpUp("CHD", "admin", contracts.KindTokensCreate)
	req := contracts.TokenCreateRequest{Header: contracts.NewHeader(contracts.TypeTokenCreateRequest), TTL: contracts.Duration(time.Hour), Uses: 100}
	data, _ := json.Marshal(req)
	for range 3 {
		msg, err := nc.Request(subj, data, time.Second)
		if !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, nats.ErrTimeout) {
			t.Fatalf("the parent's server reached the child's operator endpoint: %v %s", err, msg.Data)
		}
		time.Sleep(300 * time.Millisecond)
	}
	// The child's own administrator at work: operator requests, the
	// services' JetStream calls, their answers.
	op := operator(t, chd)
	for range 3 {
		if _, _, err := op.TokensCreate(context.Background(), time.Hour, 1, "local"); err != nil {
			t.Fatal(err)
		}
	}
	if n := leaked.Load(); n > 0 {
		t.Fatalf("%d of the child's own messages crossed the link, such as %v", n, leakedSubj.Load())
	}
}
