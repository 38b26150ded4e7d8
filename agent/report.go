package agent

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/agent/inventory"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
)

// DefaultInventoryInterval is how often the agent looks for inventory
// changes to report (policy will set it).
const DefaultInventoryInterval = 6 * time.Hour

// ReportInventory collects the machine's inventory and puts a report in
// the outbox: a full report the first time or when full is set, else a
// delta of the sections that changed since the last report (none: nothing
// is sent). It returns whether a report was enqueued.
func (a *Agent) ReportInventory(ctx context.Context, full bool) (bool, error) {
	a.reportMu.Lock() // one report at a time: each is the base of the next
	defer a.reportMu.Unlock()
	last, ok, err := a.store.LastReport()
	if err != nil {
		return false, err
	}
	inv, err := a.cfg.Inventory.Collect(ctx)
	var partial *inventory.PartialError
	switch {
	case errors.As(err, &partial):
		a.log.Warn("inventory partly collected", "err", err)
		if ok { // a section that failed now keeps what was last reported, so it does not look removed
			inv = contracts.InventoryApply(inv, last.Inventory, partial.Sections())
		}
	case err != nil:
		return false, err
	}
	now := time.Now().UTC()
	report := contracts.InventoryReport{
		Header: contracts.NewHeader(contracts.TypeInventoryReport), Seq: last.Seq + 1,
		Full: true, Collected: now, Inventory: inv,
	}
	if ok && !full {
		changed := contracts.InventoryDiff(last.Inventory, inv)
		if len(changed) == 0 {
			return false, nil
		}
		report.Full, report.Base, report.Changed = false, last.Seq, changed
		report.Inventory = contracts.InventoryDelta(inv, changed)
	}
	entry, err := newEntry(contracts.KindInventory, contracts.TypeInventoryReport, report)
	if err != nil {
		return false, err
	}
	if err := a.store.EnqueueReport(a.cfg.OutboxMax, entry, state.Report{Seq: report.Seq, Collected: now, Inventory: inv}); err != nil {
		return false, err
	}
	a.log.Info("inventory report queued", "seq", report.Seq, "full", report.Full, "changed", report.Changed)
	a.wakeOutbox()
	return true, nil
}

// runInventory reports at once when nothing was reported yet, then looks
// for changes every inventory interval (the policy may change it).
func (a *Agent) runInventory(ctx context.Context) {
	if a.inventoryInterval() < 0 {
		return
	}
	if _, ok, err := a.store.LastReport(); err == nil && !ok {
		if _, err := a.ReportInventory(ctx, true); err != nil {
			a.log.Warn("inventory report failed", "err", err)
		}
	}
	tick := time.NewTicker(a.inventoryInterval())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.pol.inventoryChanged:
			tick.Reset(a.inventoryInterval())
		case <-tick.C:
			if _, err := a.ReportInventory(ctx, false); err != nil {
				a.log.Warn("inventory report failed", "err", err)
			}
		}
	}
}

// refreshInventory answers the site's request for a report now.
func (a *Agent) refreshInventory(ctx context.Context, m *nats.Msg) {
	var req contracts.InventoryRefresh
	if err := json.Unmarshal(m.Data, &req); err != nil || req.Type != contracts.TypeInventoryRefresh {
		a.log.Warn("malformed inventory refresh ignored", "err", err)
		return
	}
	go func() {
		if _, err := a.ReportInventory(ctx, req.Full); err != nil {
			a.log.Warn("inventory refresh failed", "err", err)
		}
	}()
}
