package status

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stewardhq/steward/contracts"
)

type recordSink struct {
	mu   sync.Mutex
	msgs []map[string]string
	ids  []int
}

func (s *recordSink) Emit(_ context.Context, id int, props map[string]string) contracts.StatusMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, id)
	s.msgs = append(s.msgs, props)
	return contracts.StatusMessage{}
}

func TestErrorsAsStatus(t *testing.T) {
	var buf bytes.Buffer
	sink := &recordSink{}
	log := ErrorsAsStatus(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})), sink, "steward-policy")

	log.Info("fine")                 // below both: neither logged nor emitted
	log.Warn("slow", "subject", "x") // logged, not emitted
	log.With("subject", "steward.S.op.alice.up.settings.apply").Error("request failed", "err", errors.New("disk full"))

	if len(sink.ids) != 1 || sink.ids[0] != contracts.StatusServiceFailed {
		t.Fatalf("emitted %v, want one StatusServiceFailed", sink.ids)
	}
	got := sink.msgs[0]
	if got["service"] != "steward-policy" || got["error"] != "disk full" || !strings.Contains(got["operation"], "settings.apply") {
		t.Fatalf("emitted properties %v", got)
	}
	if s := buf.String(); strings.Contains(s, "fine") || !strings.Contains(s, "slow") || !strings.Contains(s, "disk full") {
		t.Fatalf("log = %q, want warn and error lines only", s)
	}
	if !strings.HasPrefix(got["operation"], "answer steward.S.op.alice.up.settings.apply") {
		t.Fatalf("operation = %q, want the subject it failed to answer", got["operation"])
	}
}
