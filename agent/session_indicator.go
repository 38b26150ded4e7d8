package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// IndicatorFile is the file in the state dir that shows the sessions
// running while the policy asks for an indicator (remoteTools.showIndicator):
// one line per session, removed when none runs. A desktop notifier or a
// login shell's profile can show it; "steward-agent status" and
// "steward-agent sessions" always list the sessions.
const IndicatorFile = "session-indicator"

// updateIndicator rewrites the indicator file after a session started,
// ended or was joined.
func (m *sessionManager) updateIndicator(a *Agent) {
	if a.cfg.Store != nil || a.cfg.StateDir == "" {
		return // embedded (simulator): no state dir
	}
	m.indicatorMu.Lock()
	defer m.indicatorMu.Unlock()
	show := true
	if pol, err := a.store.Policy(); err == nil {
		show = localConsentRules(pol).indicator
	}
	path := filepath.Join(a.cfg.StateDir, IndicatorFile)
	running := a.Sessions()
	if !show || len(running) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			a.log.Warn("session indicator not removed", "path", path, "err", err)
		}
		return
	}
	var b strings.Builder
	for _, s := range running {
		fmt.Fprintf(&b, "Remote %s session of %s with %s since %s (session %s)", s.Kind, s.Operator, accessWords(s.Access),
			s.Started.Local().Format(time.TimeOnly), s.ID)
		for _, p := range s.Participants[1:] {
			fmt.Fprintf(&b, "; %s joined with %s", p.Operator, accessWords(p.Access))
		}
		b.WriteByte('\n')
	}
	tmp := path + ".tmp"
	err := os.WriteFile(tmp, []byte(b.String()), 0o644)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		a.log.Warn("session indicator not written", "path", path, "err", err)
	}
}

// accessWords says what an access level lets an operator do.
func accessWords(access string) string {
	switch access {
	case "full":
		return "full control"
	case "view":
		return "view only"
	}
	return access + " access"
}
