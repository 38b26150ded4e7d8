package contracts

import (
	"bytes"
	"encoding/json"
	"flag"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Fixed values, so that the golden files do not change from run to run.
var (
	t0 = time.Date(2026, 11, 21, 14, 30, 0, 0, time.UTC)
	t1 = time.Date(2026, 11, 21, 14, 30, 15, 500_000_000, time.UTC)
	t2 = time.Date(2026, 11, 22, 14, 30, 0, 0, time.UTC)
)

const (
	exampleMsgID    = "0195a3c4-7e21-7a4b-9c3d-2f1e0d9c8b7a"
	exampleClientID = "0195a3c4-0000-7000-8000-0000000000c1"
	exampleTokenID  = "0195a3c4-0000-7000-8000-0000000000a1"
	exampleSiteKey  = "OSITEKEYEXAMPLEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	exampleAgentKey = "UAGENTKEYEXAMPLEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
)

func hdr(typ string) Header { return Header{Type: typ, ID: exampleMsgID, Time: t0} }

var exampleClient = Client{
	ID:           exampleClientID,
	Name:         "web-01",
	Hostname:     "web-01.example.org",
	OS:           "linux",
	Arch:         "amd64",
	AgentVersion: "0.1.0",
	Capability:   1,
	Status:       ClientPending,
	Online:       true,
	FirstSeen:    t0,
	LastSeen:     t1,
	Key:          exampleAgentKey,
	// (a pending client, to show every field)
	PendingReason: "enrollment token 3f2a… has expired",
}

var exampleTokenInfo = TokenInfo{
	ID:        exampleTokenID,
	Created:   t0,
	Expires:   t2,
	Uses:      10,
	Used:      3,
	Revoked:   true,
	CreatedBy: "alice",
	Note:      "web farm",
	Child:     "BR1", // (a site token's, to show every field)
}

// goldenExamples holds one example of every message type, keyed by its type
// string. Each example sets every field, even where a real message would
// leave some empty, so that every field shows in its golden file: renaming or
// removing one changes the file, and adding one fails TestGoldenExamplesFull
// until the example sets it.
var goldenExamples = map[string]Typed{
	TypeEnrollRequest: &EnrollRequest{
		Header:       hdr(TypeEnrollRequest),
		Token:        "STW1-eyJzIjoiczEifQ",
		Name:         "web-01",
		Hostname:     "web-01.example.org",
		OS:           "linux",
		Arch:         "amd64",
		AgentVersion: "0.1.0",
		Capability:   1,
	},
	TypeEnrollResponse: &EnrollResponse{
		Header:    hdr(TypeEnrollResponse),
		Status:    EnrollPending,
		ClientID:  exampleClientID,
		Site:      "s1",
		SiteKey:   exampleSiteKey,
		Signature: "c2lnbmF0dXJl",
		Reason:    CodeTokenExpired,
		Message:   "the token has expired; waiting for an operator to approve",
	},
	TypeHeartbeat: &Heartbeat{
		Header:       hdr(TypeHeartbeat),
		Name:         "web-01",
		Hostname:     "web-01.example.org",
		OS:           "linux",
		Arch:         "amd64",
		AgentVersion: "0.1.0",
		Capability:   1,
		Interval:     Duration(30 * time.Second),
		Started:      t0,
	},
	TypeClientListRequest: &ClientListRequest{
		Header: hdr(TypeClientListRequest),
		Status: ClientPending,
		Offset: 1000,
		Max:    500,
	},
	TypeClientListResponse: &ClientListResponse{
		Header:  hdr(TypeClientListResponse),
		Clients: []Client{exampleClient},
		Total:   2500,
		Next:    1500,
	},
	TypeClientRequest: &ClientRequest{
		Header: hdr(TypeClientRequest),
		Ref:    "web-01",
	},
	TypeClientResponse: &ClientResponse{
		Header: hdr(TypeClientResponse),
		Client: exampleClient,
	},
	TypeClientEvent: &ClientEvent{
		Header: hdr(TypeClientEvent),
		Action: ClientEnrolled,
		Client: exampleClient,
		By:     "token:" + exampleTokenID,
	},
	TypeServiceListRequest: &ServiceListRequest{
		Header: hdr(TypeServiceListRequest),
	},
	TypeServiceListResponse: &ServiceListResponse{
		Header: hdr(TypeServiceListResponse),
		Services: []ServiceInstance{{
			Name:      "admin",
			ID:        "Vx1bT3kQm9pL2sR8wN4a7c",
			Version:   "0.1.0",
			Endpoints: []string{"tokens.create", "tokens.list"},
			Requests:  42,
			Errors:    1,
			Started:   t0,
		}},
	},
	TypeAgentStatus: &AgentStatus{
		Header:        hdr(TypeAgentStatus),
		ClientID:      exampleClientID,
		Name:          "web-01",
		Site:          "s1",
		SiteKey:       exampleSiteKey,
		Server:        "nats://steward.example.org:4222",
		State:         "connected",
		Connected:     true,
		LastHeartbeat: t1,
		Started:       t0,
		AgentVersion:  "0.1.0",
		Capability:    1,
		Message:       "connected since 14:30",
	},
	TypeTokenCreateRequest: &TokenCreateRequest{
		Header: hdr(TypeTokenCreateRequest),
		TTL:    Duration(24 * time.Hour),
		Uses:   10,
		Note:   "web farm",
	},
	TypeTokenResponse: &TokenResponse{
		Header: hdr(TypeTokenResponse),
		Token:  "STW1-eyJzIjoiczEifQ",
		Info:   exampleTokenInfo,
	},
	TypeTokenListRequest: &TokenListRequest{
		Header: hdr(TypeTokenListRequest),
	},
	TypeTokenListResponse: &TokenListResponse{
		Header: hdr(TypeTokenListResponse),
		Tokens: []TokenInfo{exampleTokenInfo},
	},
	TypeTokenRevokeRequest: &TokenRevokeRequest{
		Header: hdr(TypeTokenRevokeRequest),
		ID:     exampleTokenID,
	},
}

func goldenPath(typ string) string { return filepath.Join("testdata", typ+".golden.json") }

func TestGolden(t *testing.T) {
	for _, typ := range slices.Sorted(maps.Keys(goldenExamples)) {
		ex := goldenExamples[typ]
		t.Run(typ, func(t *testing.T) {
			if got := ex.MessageType(); got != typ {
				t.Errorf("example Header.Type: got %q, want %q", got, typ)
			}
			got, err := json.MarshalIndent(ex, "", "\t")
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			got = append(got, '\n')
			path := goldenPath(typ)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: wire format changed (within v1 only add fields; run go test -update if that is all you did)\ngot:\n%s\nwant:\n%s", path, got, want)
			}

			// The golden file decodes, through Decode as a service would, back
			// to the example.
			back := reflect.New(reflect.TypeOf(ex).Elem()).Interface()
			if err := Decode(want, typ, back); err != nil {
				t.Fatalf("Decode(%s): got error %v, want nil", path, err)
			}
			if !reflect.DeepEqual(back, ex) {
				t.Errorf("Decode(%s): got %+v, want %+v", path, back, ex)
			}
		})
	}
}

// TestGoldenEveryType parses the package source so that a new Type* constant
// cannot be added without a golden example, and checks that every golden file
// in testdata/ belongs to an example.
func TestGoldenEveryType(t *testing.T) {
	declared := map[string]string{} // type string -> constant name
	for _, c := range sourceConsts(t) {
		if !strings.HasPrefix(c.Name, "Type") {
			continue
		}
		if c.Kind != token.STRING {
			t.Errorf("%s: %s: got a non-literal value, want a string literal", c.Pos, c.Name)
			continue
		}
		if other, ok := declared[c.Lit]; ok {
			t.Errorf("%s: %s = %q: got the same type string as %s, want each type string once", c.Pos, c.Name, c.Lit, other)
		}
		declared[c.Lit] = c.Name
		if !strings.HasPrefix(c.Lit, "steward.v1.") {
			t.Errorf("%s: %s = %q: got no version prefix, want \"steward.v1.\"", c.Pos, c.Name, c.Lit)
		}
		if _, ok := goldenExamples[c.Lit]; !ok {
			t.Errorf("%s: %s = %q: got no golden example, want one in goldenExamples", c.Pos, c.Name, c.Lit)
		}
	}
	if len(declared) == 0 {
		t.Fatalf("Type* constants in source: got 0, want some")
	}
	for typ := range goldenExamples {
		if _, ok := declared[typ]; !ok {
			t.Errorf("golden example %q: got no Type* constant with that value, want one", typ)
		}
	}

	files, err := filepath.Glob(filepath.Join("testdata", "*.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		typ := strings.TrimSuffix(filepath.Base(f), ".golden.json")
		if _, ok := goldenExamples[typ]; !ok {
			t.Errorf("%s: got a golden file with no example, want it removed or an example added", f)
		}
	}
}

// TestGoldenExamplesFull checks that every example sets every field, so that
// every field appears in the golden files.
func TestGoldenExamplesFull(t *testing.T) {
	for typ, ex := range goldenExamples {
		for _, f := range zeroFields(reflect.ValueOf(ex).Elem(), reflect.TypeOf(ex).Elem().Name()) {
			t.Errorf("golden example %s: %s: got the zero value, want it set", typ, f)
		}
	}
}

var timeType = reflect.TypeFor[time.Time]()

// zeroFields lists the paths of the zero-valued fields below v.
func zeroFields(v reflect.Value, path string) []string {
	switch {
	case v.Type() == timeType:
		if v.Interface().(time.Time).IsZero() {
			return []string{path}
		}
		return nil
	case v.Kind() == reflect.Struct:
		var out []string
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			out = append(out, zeroFields(v.Field(i), path+"."+f.Name)...)
		}
		return out
	case v.Kind() == reflect.Slice:
		if v.Len() == 0 {
			return []string{path}
		}
		var out []string
		for i := range v.Len() {
			out = append(out, zeroFields(v.Index(i), path+"[]")...)
		}
		return out
	case v.IsZero():
		return []string{path}
	}
	return nil
}

// TestNoJSONNameClash fails if a message type has a field whose JSON name is
// also that of a field of its embedded Header (or of another field):
// encoding/json would then silently drop one of them from the wire.
func TestNoJSONNameClash(t *testing.T) {
	for typ, ex := range goldenExamples {
		seen := map[string]string{} // JSON name -> Go field path
		var walk func(rt reflect.Type, path string)
		walk = func(rt reflect.Type, path string) {
			for i := range rt.NumField() {
				f := rt.Field(i)
				tag := f.Tag.Get("json")
				if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
					walk(f.Type, path+"."+f.Name)
					continue
				}
				if !f.IsExported() || tag == "-" {
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				if name == "" {
					name = f.Name
				}
				if other, ok := seen[name]; ok {
					t.Errorf("%s: JSON name %q: got it on both %s and %s, want each name once", typ, name, other, path+"."+f.Name)
				}
				seen[name] = path + "." + f.Name
			}
		}
		rt := reflect.TypeOf(ex).Elem()
		walk(rt, rt.Name())
	}
}
