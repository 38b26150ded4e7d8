package contracts

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %T: %v", v, err)
	}
	return b
}

// clientRequestOfSize is a valid ClientRequest payload exactly n bytes long.
func clientRequestOfSize(t *testing.T, n int) []byte {
	t.Helper()
	b := mustJSON(t, &ClientRequest{Header: hdr(TypeClientRequest), Ref: ""})
	pad := n - len(b)
	if pad < 1 {
		t.Fatalf("size %d: smaller than an empty request (%d bytes)", n, len(b))
	}
	b = mustJSON(t, &ClientRequest{Header: hdr(TypeClientRequest), Ref: strings.Repeat("r", pad)})
	if len(b) != n {
		t.Fatalf("payload size: got %d, want %d", len(b), n)
	}
	return b
}

func TestDecode(t *testing.T) {
	okEnroll := func() EnrollRequest {
		return EnrollRequest{Header: hdr(TypeEnrollRequest), Name: "web-01", Hostname: "web-01.example.org",
			OS: "linux", Arch: "amd64", AgentVersion: "0.1.0", Capability: 1}
	}
	enroll := func(f func(*EnrollRequest)) *EnrollRequest { r := okEnroll(); f(&r); return &r }
	okBeat := func() Heartbeat {
		return Heartbeat{Header: hdr(TypeHeartbeat), Name: "web-01", Interval: Duration(30 * time.Second), Started: t0}
	}
	beat := func(f func(*Heartbeat)) *Heartbeat { h := okBeat(); f(&h); return &h }
	create := func(ttl time.Duration, uses int, note string) *TokenCreateRequest {
		return &TokenCreateRequest{Header: hdr(TypeTokenCreateRequest), TTL: Duration(ttl), Uses: uses, Note: note}
	}
	long := func(n int) string { return strings.Repeat("x", n) }

	const noCode Code = 0 // the row decodes without error
	tests := []struct {
		name string
		data []byte // when nil, mustJSON(msg)
		msg  Typed  // what to encode, and the kind of value to decode into
		want string
		code Code
	}{
		// Size.
		{"at limit", clientRequestOfSize(t, MaxMessageBytes), &ClientRequest{}, TypeClientRequest, noCode},
		{"over limit", clientRequestOfSize(t, MaxMessageBytes+1), &ClientRequest{}, TypeClientRequest, CodeTooLarge},
		{"far over limit", []byte(strings.Repeat(" ", 4*MaxMessageBytes)), &ClientRequest{}, TypeClientRequest, CodeTooLarge},
		{"over limit and malformed", []byte("{" + strings.Repeat("x", MaxMessageBytes)), &ClientRequest{}, TypeClientRequest, CodeTooLarge},

		// Malformed JSON.
		{"empty", []byte{}, &ClientRequest{}, TypeClientRequest, CodeBadRequest},
		{"not json", []byte("ref=web-01"), &ClientRequest{}, TypeClientRequest, CodeBadRequest},
		{"truncated", []byte(`{"type":"steward.v1.client_request","ref":"we`), &ClientRequest{}, TypeClientRequest, CodeBadRequest},
		{"trailing data", []byte(`{"type":"steward.v1.client_request","ref":"web-01"} {}`), &ClientRequest{}, TypeClientRequest, CodeBadRequest},
		{"array", []byte(`[]`), &ClientRequest{}, TypeClientRequest, CodeBadRequest},
		{"wrong field type", []byte(`{"type":"steward.v1.client_request","ref":7}`), &ClientRequest{}, TypeClientRequest, CodeBadRequest},
		{"bad time", []byte(`{"type":"steward.v1.client_request","time":"yesterday","ref":"web-01"}`), &ClientRequest{}, TypeClientRequest, CodeBadRequest},
		{"bad duration", []byte(`{"type":"steward.v1.token_create_request","ttl":"forever","uses":1}`), &TokenCreateRequest{}, TypeTokenCreateRequest, CodeBadRequest},
		{"numeric duration", []byte(`{"type":"steward.v1.token_create_request","ttl":3600,"uses":1}`), &TokenCreateRequest{}, TypeTokenCreateRequest, CodeBadRequest},

		// Type string.
		{"no type", []byte(`{"ref":"web-01"}`), &ClientRequest{}, TypeClientRequest, CodeBadRequest},
		{"null", []byte(`null`), &ClientRequest{}, TypeClientRequest, CodeBadRequest},
		{"other type", mustJSON(t, &ClientRequest{Header: hdr(TypeClientResponse), Ref: "web-01"}), &ClientRequest{}, TypeClientRequest, CodeBadRequest},
		{"want other type", mustJSON(t, &ClientRequest{Header: hdr(TypeClientRequest), Ref: "web-01"}), &ClientRequest{}, TypeClientResponse, CodeBadRequest},
		{"type case", mustJSON(t, &ClientRequest{Header: hdr("STEWARD.V1.CLIENT_REQUEST"), Ref: "web-01"}), &ClientRequest{}, TypeClientRequest, CodeBadRequest},
		{"other version", mustJSON(t, &ClientRequest{Header: hdr("steward.v2.client_request"), Ref: "web-01"}), &ClientRequest{}, TypeClientRequest, CodeBadRequest},
		{"heartbeat as enroll", mustJSON(t, okBeat()), &EnrollRequest{}, TypeEnrollRequest, CodeBadRequest},

		// EnrollRequest.Validate.
		{"enroll ok", nil, enroll(func(r *EnrollRequest) {}), TypeEnrollRequest, noCode},
		{"enroll at bounds", nil, enroll(func(r *EnrollRequest) {
			r.Name, r.Hostname, r.OS, r.Arch, r.AgentVersion, r.Token = long(64), long(255), long(64), long(64), long(64), long(4096)
		}), TypeEnrollRequest, noCode},
		{"enroll no name", nil, enroll(func(r *EnrollRequest) { r.Name = "" }), TypeEnrollRequest, CodeBadRequest},
		{"enroll long name", nil, enroll(func(r *EnrollRequest) { r.Name = long(65) }), TypeEnrollRequest, CodeBadRequest},
		{"enroll dotted name", nil, enroll(func(r *EnrollRequest) { r.Name = "web.01" }), TypeEnrollRequest, CodeBadRequest},
		{"enroll wildcard name", nil, enroll(func(r *EnrollRequest) { r.Name = "*" }), TypeEnrollRequest, CodeBadRequest},
		{"enroll spaced name", nil, enroll(func(r *EnrollRequest) { r.Name = "web 01" }), TypeEnrollRequest, CodeBadRequest},
		{"enroll long hostname", nil, enroll(func(r *EnrollRequest) { r.Hostname = long(256) }), TypeEnrollRequest, CodeBadRequest},
		{"enroll long os", nil, enroll(func(r *EnrollRequest) { r.OS = long(65) }), TypeEnrollRequest, CodeBadRequest},
		{"enroll long arch", nil, enroll(func(r *EnrollRequest) { r.Arch = long(65) }), TypeEnrollRequest, CodeBadRequest},
		{"enroll long version", nil, enroll(func(r *EnrollRequest) { r.AgentVersion = long(65) }), TypeEnrollRequest, CodeBadRequest},
		{"enroll long token", nil, enroll(func(r *EnrollRequest) { r.Token = long(4097) }), TypeEnrollRequest, CodeBadRequest},
		{"enroll capability 0", nil, enroll(func(r *EnrollRequest) { r.Capability = 0 }), TypeEnrollRequest, CodeBadRequest},
		{"enroll capability -1", nil, enroll(func(r *EnrollRequest) { r.Capability = -1 }), TypeEnrollRequest, CodeBadRequest},

		// Heartbeat.Validate.
		{"heartbeat ok", nil, beat(func(h *Heartbeat) {}), TypeHeartbeat, noCode},
		{"heartbeat no name", nil, beat(func(h *Heartbeat) { h.Name = "" }), TypeHeartbeat, CodeBadRequest},
		{"heartbeat bad name", nil, beat(func(h *Heartbeat) { h.Name = "a>b" }), TypeHeartbeat, CodeBadRequest},
		{"heartbeat zero interval", nil, beat(func(h *Heartbeat) { h.Interval = 0 }), TypeHeartbeat, CodeBadRequest},
		{"heartbeat negative interval", nil, beat(func(h *Heartbeat) { h.Interval = Duration(-time.Second) }), TypeHeartbeat, CodeBadRequest},
		{"heartbeat null interval", []byte(`{"type":"steward.v1.heartbeat","name":"web-01","interval":null}`), &Heartbeat{}, TypeHeartbeat, CodeBadRequest},

		// TokenCreateRequest.Validate.
		{"create ok", nil, create(24*time.Hour, 10, "web farm"), TypeTokenCreateRequest, noCode},
		{"create min", nil, create(time.Second, 1, ""), TypeTokenCreateRequest, noCode},
		{"create max", nil, create(MaxTokenTTL, MaxTokenUses, long(256)), TypeTokenCreateRequest, noCode},
		{"create no ttl", nil, create(0, 1, ""), TypeTokenCreateRequest, CodeBadRequest},
		{"create sub-second ttl", nil, create(time.Second-1, 1, ""), TypeTokenCreateRequest, CodeBadRequest},
		{"create negative ttl", nil, create(-time.Hour, 1, ""), TypeTokenCreateRequest, CodeBadRequest},
		{"create ttl over max", nil, create(MaxTokenTTL+time.Second, 1, ""), TypeTokenCreateRequest, CodeBadRequest},
		{"create no uses", nil, create(time.Hour, 0, ""), TypeTokenCreateRequest, CodeBadRequest},
		{"create negative uses", nil, create(time.Hour, -1, ""), TypeTokenCreateRequest, CodeBadRequest},
		{"create uses over max", nil, create(time.Hour, MaxTokenUses+1, ""), TypeTokenCreateRequest, CodeBadRequest},
		{"create long note", nil, create(time.Hour, 1, long(257)), TypeTokenCreateRequest, CodeBadRequest},
		{"create ttl missing", []byte(`{"type":"steward.v1.token_create_request","uses":1}`), &TokenCreateRequest{}, TypeTokenCreateRequest, CodeBadRequest},

		// TokenRevokeRequest.Validate.
		{"revoke ok", nil, &TokenRevokeRequest{Header: hdr(TypeTokenRevokeRequest), ID: exampleTokenID}, TypeTokenRevokeRequest, noCode},
		{"revoke no id", nil, &TokenRevokeRequest{Header: hdr(TypeTokenRevokeRequest)}, TypeTokenRevokeRequest, CodeBadRequest},
		// The message ID is not the token ID.
		{"revoke message id only", []byte(`{"type":"steward.v1.token_revoke_request","id":"` + exampleTokenID + `"}`), &TokenRevokeRequest{}, TypeTokenRevokeRequest, CodeBadRequest},

		// ClientRequest.Validate.
		{"client ok", nil, &ClientRequest{Header: hdr(TypeClientRequest), Ref: "web-01"}, TypeClientRequest, noCode},
		{"client no ref", nil, &ClientRequest{Header: hdr(TypeClientRequest)}, TypeClientRequest, CodeBadRequest},
	}
	for _, tt := range tests {
		data := tt.data
		if data == nil {
			data = mustJSON(t, tt.msg)
		}
		into := reflect.New(reflect.TypeOf(tt.msg).Elem()).Interface()
		err := Decode(data, tt.want, into)
		if tt.code == noCode {
			if err != nil {
				t.Errorf("%s: Decode: got error %v, want nil", tt.name, err)
			} else if tt.data == nil && !reflect.DeepEqual(into, tt.msg) {
				t.Errorf("%s: Decode: got %+v, want %+v", tt.name, into, tt.msg)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s: Decode: got error %v (%T), want an *Error with code %s", tt.name, err, err, tt.code)
			continue
		}
		if e.Code != tt.code {
			t.Errorf("%s: Decode: got code %s (%v), want %s", tt.name, e.Code, err, tt.code)
		}
		if e.Message == "" {
			t.Errorf("%s: Decode: got an empty message, want one saying what is wrong", tt.name)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, `"0s"`},
		{time.Nanosecond, `"1ns"`},
		{1500 * time.Millisecond, `"1.5s"`},
		{90 * time.Second, `"1m30s"`},
		{24 * time.Hour, `"24h0m0s"`},
		{MaxTokenTTL, `"8760h0m0s"`},
		{-time.Second, `"-1s"`},
		{math.MaxInt64, `"2562047h47m16.854775807s"`},
		{math.MinInt64, `"-2562047h47m16.854775808s"`},
	}
	for _, tt := range tests {
		got, err := json.Marshal(Duration(tt.d))
		if err != nil {
			t.Errorf("Marshal(%v): got error %v, want %s", tt.d, err, tt.want)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("Marshal(%v): got %s, want %s", tt.d, got, tt.want)
		}
		var back Duration
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("Unmarshal(%s): got error %v, want %v", got, err, tt.d)
			continue
		}
		if time.Duration(back) != tt.d {
			t.Errorf("Unmarshal(%s): got %v, want %v", got, time.Duration(back), tt.d)
		}
	}
}

func TestDurationUnmarshal(t *testing.T) {
	const keep = Duration(7 * time.Minute) // the value before decoding
	tests := []struct {
		in      string
		want    Duration
		wantErr string // a substring of the error; "" for none
	}{
		{`"90s"`, Duration(90 * time.Second), ""},
		{`"24h"`, Duration(24 * time.Hour), ""},
		{`"1h30m"`, Duration(90 * time.Minute), ""},
		{`"0"`, 0, ""},
		{`"-5m"`, Duration(-5 * time.Minute), ""},
		{`null`, keep, ""}, // as encoding/json does: null leaves the value alone
		{`""`, keep, "invalid duration"},
		{`"forever"`, keep, "invalid duration"},
		{`"24"`, keep, "missing unit"},
		{`"1d"`, keep, "unknown unit"},
		{`" 24h"`, keep, "invalid duration"},
		{`86400`, keep, "must be a string"},
		{`true`, keep, "must be a string"},
		{`{}`, keep, "must be a string"},
	}
	for _, tt := range tests {
		got := keep
		err := json.Unmarshal([]byte(tt.in), &got)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("Unmarshal(%s): got error %v, want %v", tt.in, err, time.Duration(tt.want))
		case tt.wantErr != "" && err == nil:
			t.Errorf("Unmarshal(%s): got %v, want an error containing %q", tt.in, time.Duration(got), tt.wantErr)
		case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
			t.Errorf("Unmarshal(%s): got error %q, want one containing %q", tt.in, err, tt.wantErr)
		}
		if got != tt.want {
			t.Errorf("Unmarshal(%s): got value %v, want %v", tt.in, time.Duration(got), time.Duration(tt.want))
		}
	}
}

func TestNewHeader(t *testing.T) {
	before := time.Now()
	a, b := NewHeader(TypeHeartbeat), NewHeader(TypeHeartbeat)
	after := time.Now()
	if a.Type != TypeHeartbeat || a.MessageType() != TypeHeartbeat {
		t.Errorf("NewHeader type: got %q/%q, want %q", a.Type, a.MessageType(), TypeHeartbeat)
	}
	if a.ID == "" || a.ID == b.ID {
		t.Errorf("NewHeader IDs: got %q and %q, want two distinct non-empty IDs", a.ID, b.ID)
	}
	if a.Time.Location() != time.UTC {
		t.Errorf("NewHeader time zone: got %v, want UTC", a.Time.Location())
	}
	if a.Time.Before(before.Add(-time.Second)) || a.Time.After(after.Add(time.Second)) {
		t.Errorf("NewHeader time: got %v, want between %v and %v", a.Time, before, after)
	}
}
