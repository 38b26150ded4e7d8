package agent

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
)

func TestVerifyEnrollResponse(t *testing.T) {
	site, _ := nkeys.CreateAccount()
	sitePub, _ := site.PublicKey()
	other, _ := nkeys.CreateAccount()
	agent, _ := nkeys.CreateUser()
	agentPub, _ := agent.PublicKey()
	otherAgent, _ := nkeys.CreateUser()
	otherAgentPub, _ := otherAgent.PublicKey()
	const clientID = "5b1e2c7a-0a57-4f8e-8d43-1d0c1e3a9b77"

	// signed makes an approval signed by signer over the given attestation
	// fields; the response itself names signer's key and clientID.
	signed := func(signer nkeys.KeyPair, attSite, attClient, attAgent string) contracts.EnrollResponse {
		pub, _ := signer.PublicKey()
		r := contracts.EnrollResponse{
			Header: contracts.NewHeader(contracts.TypeEnrollResponse),
			Status: contracts.EnrollApproved, ClientID: clientID, Site: "LAB", SiteKey: pub,
		}
		sig, _ := signer.Sign(contracts.EnrollAttestation(attSite, attClient, attAgent, r.Time))
		r.Signature = base64.RawURLEncoding.EncodeToString(sig)
		return r
	}
	good := func() contracts.EnrollResponse { return signed(site, "LAB", clientID, agentPub) }
	pinned := EnrollExpectation{Site: "LAB", SiteKey: sitePub, AgentKey: agentPub}
	tofu := EnrollExpectation{Site: "LAB", AgentKey: agentPub}

	cases := []struct {
		name    string
		resp    func() contracts.EnrollResponse
		want    EnrollExpectation
		wantErr string // "" means trusted
	}{
		{"good, pinned", good, pinned, ""},
		{"good, trust on first use", good, tofu, ""},
		{"other site key than pinned", func() contracts.EnrollResponse { return signed(other, "LAB", clientID, agentPub) }, pinned, "pins site key " + sitePub},
		{"other site key, first use", func() contracts.EnrollResponse { return signed(other, "LAB", clientID, agentPub) }, tofu, ""},
		{"pinned key named, signed by another", func() contracts.EnrollResponse {
			r := signed(other, "LAB", clientID, agentPub)
			r.SiteKey = sitePub
			return r
		}, pinned, "does not verify"},
		{"signature for another agent key", func() contracts.EnrollResponse { return signed(site, "LAB", clientID, otherAgentPub) }, pinned, "does not verify"},
		{"signature for another client id", func() contracts.EnrollResponse { return signed(site, "LAB", "other-client", agentPub) }, pinned, "does not verify"},
		{"signature for another site", func() contracts.EnrollResponse { return signed(site, "P01", clientID, agentPub) }, pinned, "does not verify"},
		{"expects another agent", good, EnrollExpectation{Site: "LAB", SiteKey: sitePub, AgentKey: otherAgentPub}, "does not verify"},
		{"time changed after signing", func() contracts.EnrollResponse {
			r := good()
			r.Time = r.Time.Add(time.Second)
			return r
		}, pinned, "does not verify"},
		{"client id changed after signing", func() contracts.EnrollResponse {
			r := good()
			r.ClientID = "5b1e2c7a-0a57-4f8e-8d43-1d0c1e3a9b78"
			return r
		}, pinned, "does not verify"},
		{"bit flipped in signature", func() contracts.EnrollResponse {
			r := good()
			sig, _ := base64.RawURLEncoding.DecodeString(r.Signature)
			sig[0] ^= 1
			r.Signature = base64.RawURLEncoding.EncodeToString(sig)
			return r
		}, pinned, "does not verify"},
		{"no signature", func() contracts.EnrollResponse { r := good(); r.Signature = ""; return r }, pinned, "missing"},
		{"signature not base64url", func() contracts.EnrollResponse { r := good(); r.Signature = "!!"; return r }, pinned, "missing or not base64url"},
		{"other site", good, EnrollExpectation{Site: "P01", AgentKey: agentPub}, `site "LAB"`},
		{"pending", func() contracts.EnrollResponse { r := good(); r.Status = contracts.EnrollPending; return r }, pinned, "not \"approved\""},
		{"wrong type", func() contracts.EnrollResponse { r := good(); r.Type = contracts.TypeHeartbeat; return r }, pinned, "message type"},
		{"site key not an nkey", func() contracts.EnrollResponse { r := good(); r.SiteKey = "nope"; return r }, tofu, "not an NKey"},
		{"client id with wildcard", func() contracts.EnrollResponse { r := good(); r.ClientID = "a.>"; return r }, pinned, "client id"},
		{"no time", func() contracts.EnrollResponse { r := good(); r.Time = time.Time{}; return r }, pinned, "no time"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyEnrollResponse(tc.resp(), tc.want)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want trusted", err)
				}
				return
			}
			if !errors.Is(err, ErrUntrustedApproval) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want ErrUntrustedApproval containing %q", err, tc.wantErr)
			}
		})
	}
}
