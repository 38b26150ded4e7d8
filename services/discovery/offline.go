package discovery

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// agentTagPrefix prefixes the client ID in the name the site's auth callout
// gives every agent connection ("agent:<clientID>").
const agentTagPrefix = "agent:"

// disconnect is what discovery needs of a server disconnect advisory.
type disconnect struct {
	ClientID string    // from the connection's "agent:<id>" name; may be empty
	Key      string    // when ClientID is empty: the NKey the connection used
	Stop     time.Time // when the server closed the connection
}

// disconnectAdvisory is the part of the server's
// io.nats.server.advisory.v1.client_disconnect message discovery reads.
type disconnectAdvisory struct {
	Client struct {
		User    string     `json:"user"`
		NameTag string     `json:"name_tag"`
		Tags    []string   `json:"tags"`
		Stop    *time.Time `json:"stop"`
	} `json:"client"`
	Time time.Time `json:"timestamp"`
}

// parseDisconnect reads a disconnect advisory. Only fields the server fills
// are trusted, never what the client said of itself (its connection "name"):
//
//   - "user": with the site's auth callout, the name of the user JWT the
//     callout issued, "agent:<clientID>" (observed with nats-server 2.15);
//     with plain NKey users, the NKey the connection authenticated with.
//   - "tags": the tags of the user JWT, where "agent:<clientID>" may be too.
//   - "name_tag": in this advisory the ACCOUNT's name tag, not the user's;
//     read anyway, should a server ever report the user's name there.
//
// When no field carries the client ID, Key is the NKey for the caller to
// match against the records' keys.
func parseDisconnect(data []byte) (disconnect, error) {
	var a disconnectAdvisory
	if err := json.Unmarshal(data, &a); err != nil {
		return disconnect{}, fmt.Errorf("malformed disconnect advisory: %w", err)
	}
	d := disconnect{Stop: a.Time}
	if a.Client.Stop != nil {
		d.Stop = *a.Client.Stop
	}
	if d.Stop.IsZero() {
		return disconnect{}, fmt.Errorf("disconnect advisory without a stop time")
	}
	for _, t := range append(append([]string{a.Client.User}, a.Client.Tags...), a.Client.NameTag) {
		if id, ok := strings.CutPrefix(t, agentTagPrefix); ok && id != "" {
			d.ClientID = id
			break
		}
	}
	if d.ClientID == "" {
		d.Key = a.Client.User
	}
	if d.ClientID == "" && d.Key == "" {
		return disconnect{}, fmt.Errorf("disconnect advisory names no agent")
	}
	return d, nil
}

// disconnectSubject is where the server of the system account reports that a
// connection of account closed.
func disconnectSubject(account string) string {
	return "$SYS.ACCOUNT." + account + ".DISCONNECT"
}
