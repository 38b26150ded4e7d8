// Package bench is Steward's benchmark suite: each benchmark measures a
// figure of a real site (a `steward serve` process) driven by simulated
// agents, beside a raw baseline (plain NATS, JetStream, bbolt, TCP) measured
// in the same run, and reports the ratio and whether the goal is met.
package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"text/tabwriter"
)

// Result is one line of bench/results.json.
type Result struct {
	Name     string   `json:"name"`
	Value    *float64 `json:"value"` // null when the benchmark could not run
	Unit     string   `json:"unit"`
	Baseline *float64 `json:"baseline"`
	Ratio    *float64 `json:"ratio"` // value / baseline
	Goal     string   `json:"goal"`
	Met      bool     `json:"met"`
	Note     string   `json:"note,omitempty"`
	Agents   int      `json:"agents,omitempty"`
}

func num(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// measured fills value, baseline and ratio.
func measured(name, unit string, value, baseline float64, goal string, met bool, note string) Result {
	r := Result{Name: name, Unit: unit, Value: num(value), Baseline: num(baseline), Goal: goal, Met: met, Note: note}
	if baseline != 0 {
		r.Ratio = num(value / baseline)
	}
	return r
}

// Print writes the results as a table.
func Print(w io.Writer, results []Result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BENCHMARK\tVALUE\tUNIT\tBASELINE\tRATIO\tGOAL\tMET\tNOTE")
	for _, r := range results {
		met := "no"
		if r.Met {
			met = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, f(r.Value), r.Unit, f(r.Baseline), f(r.Ratio), r.Goal, met, r.Note)
	}
	tw.Flush()
}

func f(v *float64) string {
	if v == nil {
		return "-"
	}
	switch a := math.Abs(*v); {
	case a >= 1000:
		return fmt.Sprintf("%.0f", *v)
	case a >= 10:
		return fmt.Sprintf("%.1f", *v)
	}
	return fmt.Sprintf("%.2f", *v)
}

// Write stores results as JSON at path, merging with the results already
// there, so one benchmark can be rerun alone (make bench BENCH=x).
func Write(path string, results []Result) error {
	var all []Result
	if data, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(data, &all)
	}
	for _, r := range results {
		replaced := false
		for i := range all {
			if all[i].Name == r.Name {
				all[i], replaced = r, true
			}
		}
		if !replaced {
			all = append(all, r)
		}
	}
	data, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
