package contracts

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestSettingsOverMaxBytes: a settings object whose lists are each within
// their bounds can still be over MaxSettingsBytes as JSON (200 permitted
// viewers of 50 characters: 11,665 bytes). Validate refuses it naming
// the largest setting, so a settings file's check reports the line; it
// passed, and the site refused it later with no line.
func TestSettingsOverMaxBytes(t *testing.T) {
	viewers := make([]string, 200)
	for i := range viewers {
		viewers[i] = fmt.Sprintf("user-%03d-%s", i, strings.Repeat("v", 41))
	}
	s := Settings{Name: "Many viewers", Priority: 10, SettingsSections: SettingsSections{RemoteTools: &RemoteToolsSettings{PermittedViewers: &viewers}}}
	err := s.Validate()
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "remoteTools.permittedViewers" || !strings.Contains(fe.Message, "over the 8192 one may be") {
		t.Fatalf("got %v, want a FieldError on remoteTools.permittedViewers over 8192 bytes", err)
	}
	viewers = viewers[:100]
	if err := s.Validate(); err != nil {
		t.Fatalf("100 viewers: %v", err)
	}
}
