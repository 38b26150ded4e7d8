package agent

import (
	"time"

	"github.com/stewardhq/steward/contracts"
)

// linkDown records that the enrolled agent lost the site, as a status
// message written to the outbox at once with the time it happened; it is
// delivered when the site is back.
func (a *Agent) linkDown(at time.Time, err error) {
	a.mu.Lock()
	if !a.lostAt.IsZero() {
		a.mu.Unlock()
		return
	}
	a.lostAt = at.UTC()
	a.mu.Unlock()
	reason := "connection closed"
	if err != nil {
		reason = err.Error()
	}
	m := contracts.NewStatus(contracts.StatusAgentConnectionLost, map[string]string{
		"site": a.site, "server": a.cfg.Server, "error": reason,
	})
	m.Time = at.UTC()
	a.enqueueStatus(m)
}

// linkUp records that the site is back after a loss.
func (a *Agent) linkUp() {
	a.mu.Lock()
	lost := a.lostAt
	a.lostAt = time.Time{}
	a.mu.Unlock()
	if lost.IsZero() {
		return
	}
	a.reportStatus(contracts.StatusAgentConnectionRegained, map[string]string{
		"site": a.site, "server": a.cfg.Server, "duration": time.Since(lost).Round(time.Millisecond).String(),
	})
}

// reportStatus puts a status message from the catalog in the outbox.
func (a *Agent) reportStatus(id int, props map[string]string) {
	a.enqueueStatus(contracts.NewStatus(id, props))
}

// enqueueStatus puts status message m in the outbox.
func (a *Agent) enqueueStatus(m contracts.StatusMessage) {
	if err := a.Enqueue(contracts.KindStatus, contracts.TypeStatusMessage, m); err != nil {
		a.log.Error("status message not kept", "status_id", m.MsgID, "err", err)
	}
}
