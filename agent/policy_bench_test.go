package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkPolicyApply is the agent-apply benchmark of `make bench`: an
// agent with a real state.db applies signed policies, each a new
// revision of the issue's settings file: verify the signature, then one
// bbolt transaction that stores the policy, the local configuration layer
// and the Remote Control Users record and enqueues the acknowledgement;
// the site's answer to the acknowledgement removes it (a second commit).
// The baseline is one bbolt transaction of the same writes (the same keys
// and bytes) on a database of the same layout. It reports ms/apply,
// baseline-ms and commits/policy.
func BenchmarkPolicyApply(b *testing.B) {
	dir := b.TempDir()
	st, err := state.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	site, _ := nkeys.CreateOperator()
	sitePub, _ := site.PublicKey()
	kp, _ := nkeys.CreateUser()
	agentPub, _ := kp.PublicKey()
	id := state.Identity{ClientID: "9d0f3a52-5f43-4d3b-9a1e-2c6a2b1f7e01", AgentKey: agentPub, Site: "LAB", SiteKey: sitePub, Name: "bench", Server: "nats://127.0.0.1:1", EnrolledAt: time.Now()}
	if err := st.PutIdentity(id); err != nil {
		b.Fatal(err)
	}
	a, err := New(Config{Store: st, Key: kp, Name: "bench", InventoryInterval: -1, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()

	sections := issueSettings()
	msgs := make([][]byte, b.N)
	now := time.Now().UTC()
	for i := range msgs {
		p := contracts.Policy{Header: contracts.NewHeader(contracts.TypePolicy), Site: "LAB", ClientID: id.ClientID, Revision: uint64(i + 1),
			Issued: now, Expires: now.Add(time.Hour), Settings: sections, Origins: map[string]contracts.Named{"remoteTools.enabled": {ID: "s1", Name: "Lab remote tools"}}}
		msgs[i] = signPolicy(b, site, p)
	}
	ctx := context.Background()
	commits0 := st.Commits()
	var elapsed time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if !a.applyPolicy(ctx, msgs[i], "bench") {
			b.Fatalf("revision %d not applied", i+1)
		}
		elapsed += time.Since(start)
		// The site acknowledges: the acknowledgement leaves the outbox in
		// a commit of its own (the agent removes a whole batch per
		// answer; one per policy is the worst case counted here).
		b.StopTimer()
		pending, _ := st.Pending(0)
		for _, e := range pending {
			if err := st.Remove(e.Seq); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	b.StopTimer()
	commits := float64(st.Commits()-commits0) / float64(b.N)

	// Baseline: the same writes, one bbolt transaction each.
	final, _ := st.Policy()
	ack, _ := newEntry(contracts.KindPolicyAck, contracts.TypePolicyAck, contracts.PolicyAck{Header: contracts.NewHeader(contracts.TypePolicyAck), Revision: 1, Applied: true, AppliedRevision: 1})
	writes := baselineWrites(b, final, ack)
	db, err := bolt.Open(filepath.Join(b.TempDir(), "baseline.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{"policy", "outbox"} {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	n := min(b.N, 2000)
	bstart := time.Now()
	for range n {
		err := db.Update(func(tx *bolt.Tx) error {
			p, o := tx.Bucket([]byte("policy")), tx.Bucket([]byte("outbox"))
			for k, v := range writes {
				if k == "ack" {
					continue
				}
				if err := p.Put([]byte(k), v); err != nil {
					return err
				}
			}
			seq, _ := o.NextSequence()
			if err := o.Put(seqBytes(seq), writes["ack"]); err != nil {
				return err
			}
			return o.Delete(seqBytes(seq - 1)) // the previous one was acknowledged: the outbox stays as small as the agent's

		})
		if err != nil {
			b.Fatal(err)
		}
	}
	baseline := time.Since(bstart) / time.Duration(n)
	b.ReportMetric(float64(elapsed.Microseconds())/1000/float64(b.N), "ms/apply")
	b.ReportMetric(float64(baseline.Microseconds())/1000, "baseline-ms")
	b.ReportMetric(commits, "commits/policy")
}

// issueSettings is the settings file of the issue as a resultant policy.
func issueSettings() contracts.SettingsSections {
	d := func(v time.Duration) *contracts.Duration { x := contracts.Duration(v); return &x }
	return contracts.SettingsSections{
		RemoteTools: &contracts.RemoteToolsSettings{Enabled: ptr(true), AccessLevel: ptr("full"), PromptUser: ptr(true), PromptTimeout: d(30 * time.Second),
			AllowWhenNoUser: ptr(true), ShowIndicator: ptr(true), PlaySound: ptr(false), PermittedViewers: ptr([]string{"alice", "group:helpdesk"}), TunnelPorts: ptr([]int{5900, 3389, 22})},
		RemoteAssistance: &contracts.RemoteAssistanceSettings{Manage: ptr(true), OverrideUserSettings: ptr(true), Unsolicited: ptr(true), Solicited: ptr(true), Level: ptr("full"), RevertOnUnmanage: ptr(false)},
		Agent:            &contracts.AgentSettings{PolicyRefresh: d(15 * time.Minute), Heartbeat: d(60 * time.Second), Inventory: d(6 * time.Hour)},
	}
}

// baselineWrites are the keys and values an apply writes.
func baselineWrites(b *testing.B, p state.PolicyState, ack state.Entry) map[string][]byte {
	enc := func(v any) []byte {
		data, err := json.Marshal(v)
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	return map[string][]byte{
		"applied": enc(p), "signed": p.Signed, "local": enc(p.Local), "user": enc(p.User),
		"rcu": enc(p.RemoteControlUsers), "ack": enc(ack),
	}
}

func seqBytes(n uint64) []byte {
	b := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		b[i] = byte(n)
		n >>= 8
	}
	return b
}
