package lookup

import (
	"strings"
	"testing"

	"github.com/stewardhq/steward/contracts"
)

type item struct{ id, name string }

func TestOne(t *testing.T) {
	items := []item{{"1", "web-01"}, {"2", "web-02"}, {"3", "db"}, {"4", "DB"}}
	id := func(i item) string { return i.id }
	name := func(i item) string { return i.name }
	tests := []struct {
		ref      string
		wantID   string
		wantCode contracts.Code
	}{
		{"2", "2", 0},
		{"web-01", "1", 0},
		{"WEB-01", "1", 0},
		{"db", "", contracts.CodeAmbiguous},
		{"nope", "", contracts.CodeNotFound},
	}
	for _, tt := range tests {
		got, err := One("client", tt.ref, items, id, name)
		if tt.wantCode != 0 {
			if contracts.CodeOf(err) != tt.wantCode {
				t.Errorf("%q: got err %v, want code %v", tt.ref, err, tt.wantCode)
			}
			continue
		}
		if err != nil || got.id != tt.wantID {
			t.Errorf("%q: got %v, %v; want id %s", tt.ref, got, err, tt.wantID)
		}
	}
	_, err := One("client", "db", items, id, name)
	if !strings.Contains(err.Error(), "3 (db)") || !strings.Contains(err.Error(), "4 (DB)") {
		t.Errorf("got %q, want both candidates listed", err)
	}
}
