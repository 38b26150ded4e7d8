package sessions

import (
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// TestOfferAsksTheUserEitherWay: an offer of assistance asks the user
// whether the site manages Remote Assistance or leaves it to the user's
// own values (the agent prompts for every offer), so the broker waits for
// the prompt; a request the user made does not ask again. Unmanaged, the
// decision said no consent, and the broker gave up after its 15 s.
func TestOfferAsksTheUserEitherWay(t *testing.T) {
	yes := true
	managed := &contracts.RemoteAssistanceSettings{Manage: &yes, Unsolicited: &yes, Solicited: &yes}
	timeout := contracts.Duration(time.Minute)
	for name, ra := range map[string]*contracts.RemoteAssistanceSettings{"not managed": nil, "managed": managed} {
		set := contracts.SettingsSections{RemoteAssistance: ra, RemoteTools: &contracts.RemoteToolsSettings{PromptTimeout: &timeout}}
		for _, c := range []struct {
			assist  string
			consent bool
		}{{"", true}, {"0195a3c4-0000-7000-8000-0000000000d2", false}} {
			d := decision{client: contracts.Client{Name: "a2"}}
			if err := checkPolicy(&d, want{kind: contracts.SessionAssist, assist: c.assist}, set); err != nil {
				t.Fatalf("%s, assist %q: %v", name, c.assist, err)
			}
			wantWait := agentAnswer
			if c.consent {
				wantWait += time.Minute
			}
			if d.consent != c.consent || answerWait(d) != wantWait {
				t.Errorf("%s, assist %q: consent %v, wait %s; want consent %v, wait %s", name, c.assist, d.consent, answerWait(d), c.consent, wantWait)
			}
		}
	}
}
