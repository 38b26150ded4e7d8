package discovery

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stewardhq/steward/services/discovery/collections"
)

// TestReadmeQueries compiles every example of the README's query fields
// table, so the documentation cannot drift from the language.
func TestReadmeQueries(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(data), "### Query fields")
	if !ok {
		t.Fatal("README has no Query fields section")
	}
	table, _, _ = strings.Cut(table, "\nHelpers:")
	code := regexp.MustCompile("`([^`]+)`")
	n := 0
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 5 || strings.HasPrefix(strings.TrimSpace(cells[1]), "Field") || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") {
			continue
		}
		for _, m := range code.FindAllStringSubmatch(cells[3], -1) {
			n++
			if _, err := collections.Compile(m[1]); err != nil {
				t.Errorf("README example %q: %v", m[1], err)
			}
		}
	}
	if n < 15 {
		t.Errorf("compiled %d README examples, want every one of the table (15 or more)", n)
	}
}
