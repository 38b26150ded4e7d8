// Package inventory collects what an agent knows of its machine
// (contracts.Inventory). Comparing inventories (the deltas an agent sends,
// the history the site keeps) is in contracts: InventoryDiff, InventoryDelta,
// InventoryApply, InventoryChanges.
//
// Collection is platform code behind one interface: collect_linux.go reads
// /proc, /sys, /etc and a few commands; collect_other.go reports the little
// the Go runtime knows so the agent builds and runs everywhere else.
package inventory

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/stewardhq/steward/contracts"
)

// Collector collects the inventory of the machine it runs on.
//
// Collect returns what it could collect even when some sections failed:
//
//   - err == nil: every section was collected.
//   - err is a *PartialError (test with errors.As): some sections failed
//     and hold what was read of them before the failure (often nothing);
//     the others are complete. Report it, log the warnings, and keep the
//     last reported value of the failed sections rather than send a delta
//     that empties them:
//     inv = Apply(inv, lastReported, partial.Sections()).
//   - any other error (ErrNothingCollected, or the context's error): the
//     inventory must not be reported.
type Collector interface {
	Collect(ctx context.Context) (contracts.Inventory, error)
}

// UserLister is a Collector that can read the logged-on users alone,
// without collecting the rest of the inventory: what a consent prompt needs
// to know, at once.
type UserLister interface {
	LoggedOnUsers(ctx context.Context) ([]string, error)
}

// ErrNothingCollected is returned, wrapping the section errors, when not a
// single section holds anything read from the machine.
var ErrNothingCollected = errors.New("inventory: nothing could be collected")

// SectionError is a section that could not be collected, or only in part.
type SectionError struct {
	Section string // contracts.InventorySectionOS, ...
	Err     error
}

func (e SectionError) Error() string { return e.Section + ": " + e.Err.Error() }

// Unwrap returns the section's error.
func (e SectionError) Unwrap() error { return e.Err }

// PartialError is the error of a collection that failed for some sections
// only: the inventory returned with it is worth reporting.
type PartialError struct {
	Failed []SectionError // in section order
}

func (e *PartialError) Error() string {
	return "inventory: collected in part: " + strings.Join(e.Warnings(), "; ")
}

// Unwrap returns the section errors, for errors.Is and errors.As.
func (e *PartialError) Unwrap() []error {
	errs := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		errs[i] = f
	}
	return errs
}

// Sections returns the names of the failed sections.
func (e *PartialError) Sections() []string {
	s := make([]string, len(e.Failed))
	for i, f := range e.Failed {
		s[i] = f.Section
	}
	return s
}

// Warnings returns one line per failed section, for logging.
func (e *PartialError) Warnings() []string {
	w := make([]string, len(e.Failed))
	for i, f := range e.Failed {
		w[i] = f.Error()
	}
	return w
}

// result gathers the outcome of the sections of a collection.
type result struct {
	collected bool // some section holds something read from the machine
	failed    []SectionError
}

// section records the outcome of collecting one section: its error, and
// whether it holds anything (a partly failed section may).
func (r *result) section(name string, err error, filled bool) {
	r.collected = r.collected || filled
	if err != nil {
		r.failed = append(r.failed, SectionError{Section: name, Err: err})
	}
}

// err returns the error Collect returns: the context's error when the
// collection was cancelled, ErrNothingCollected when no section holds
// anything, a *PartialError when some failed, or nil.
func (r *result) err(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	if !r.collected {
		errs := make([]error, len(r.failed))
		for i, f := range r.failed {
			errs[i] = f
		}
		if len(errs) == 0 {
			return ErrNothingCollected
		}
		return fmt.Errorf("%w: %w", ErrNothingCollected, errors.Join(errs...))
	}
	if len(r.failed) > 0 {
		return &PartialError{Failed: r.failed}
	}
	return nil
}
