package contracts

import (
	"testing"
	"time"
)

func TestCapabilityHistory(t *testing.T) {
	if len(CapabilityHistory) == 0 {
		t.Fatalf("len(CapabilityHistory): got 0, want at least 1")
	}
	var prev time.Time
	for i, c := range CapabilityHistory {
		if want := i + 1; c.Version != want {
			t.Errorf("CapabilityHistory[%d].Version: got %d, want %d (versions start at 1 and go up by 1)", i, c.Version, want)
		}
		d, err := time.Parse(time.DateOnly, c.Date)
		if err != nil {
			t.Errorf("CapabilityHistory[%d] (v%d).Date: got %q, want YYYY-MM-DD: %v", i, c.Version, c.Date, err)
			continue
		}
		if d.Format(time.DateOnly) != c.Date {
			t.Errorf("CapabilityHistory[%d] (v%d).Date: got %q, want %q", i, c.Version, c.Date, d.Format(time.DateOnly))
		}
		if i > 0 && d.Before(prev) {
			t.Errorf("CapabilityHistory[%d] (v%d).Date: got %s, want not before v%d's %s", i, c.Version, c.Date, c.Version-1, prev.Format(time.DateOnly))
		}
		prev = d
		if c.What == "" {
			t.Errorf("CapabilityHistory[%d] (v%d).What: got empty, want what the agent learned", i, c.Version)
		}
	}
	if last := CapabilityHistory[len(CapabilityHistory)-1].Version; last != CapabilityVersion {
		t.Errorf("last CapabilityHistory version: got %d, want CapabilityVersion %d", last, CapabilityVersion)
	}
}
