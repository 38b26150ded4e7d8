package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/agent/control"
	"github.com/stewardhq/steward/contracts"
)

func TestPrintContent(t *testing.T) {
	now := time.Date(2026, 11, 21, 15, 0, 0, 0, time.UTC)
	list := control.ContentList{Dir: "/var/lib/steward-agent/content", Content: []contracts.ContentHeld{
		{Package: "tools", Version: "1.0", State: contracts.ContentInstalled, Size: 3 << 20, Bytes: 3 << 20,
			Path: "/var/lib/steward-agent/content/tools/1.0", Installed: now.Add(-time.Hour), Assigned: false, Reported: true},
		{Package: "tools", Version: "2.0", State: "downloading", Size: 4 << 20, Bytes: 1 << 20, Assigned: true},
		{Package: "bad", Version: "1", State: contracts.ContentFailed, Size: 10, Error: "chunk 1: hash mismatch", Assigned: true,
			Retry: now.Add(20 * time.Minute)},
	}}
	var b strings.Builder
	if err := printContent(&b, list, now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"PACKAGE", "tools", "3.0 MiB", "1.0 MiB of 4.0 MiB", "/var/lib/steward-agent/content/tools/1.0",
		"chunk 1: hash mismatch; tried again at ", "(in 20m0s) or when the site's assignments change (not yet reported to the site)", "no", "yes", "(1h0m0s ago)"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if got := contentSummary(list.Content); got != "1 installed, 1 downloading, 1 failed (steward-agent content)" {
		t.Errorf("summary: got %q", got)
	}
}
