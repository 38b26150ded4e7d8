package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteMergesByName(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench", "results.json")
	if err := Write(path, []Result{measured("a", "s", 2, 1, "< 3", true, ""), measured("b", "ms", math.NaN(), 1, "-", false, "could not run")}); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []Result{measured("a", "s", 4, 1, "< 3", false, "rerun")}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	var got []map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0]["name"] != "a" || got[0]["value"] != 4.0 || got[0]["ratio"] != 4.0 || got[0]["met"] != false {
		t.Fatalf("got %v, want a rerun in place and b kept", got)
	}
	if got[1]["value"] != nil || got[1]["ratio"] != nil {
		t.Fatalf("got %v for a benchmark that could not run, want null value and ratio", got[1])
	}
	for _, k := range []string{"name", "value", "unit", "baseline", "ratio", "goal", "met"} {
		if _, ok := got[0][k]; !ok {
			t.Errorf("results.json lacks %q", k)
		}
	}
}

func TestPrint(t *testing.T) {
	var b bytes.Buffer
	Print(&b, []Result{measured("heartbeat-ingest", "msgs/s", 15500, 20000, ">= 15000", true, "")})
	if !strings.Contains(b.String(), "heartbeat-ingest  15500") || !strings.Contains(b.String(), "0.78") {
		t.Fatalf("got table\n%s", b.String())
	}
}
