// Package lookup resolves what an operator typed (a name or an ID) to one
// object, the same way for clients, collections, operators and packages.
package lookup

import (
	"fmt"
	"sort"
	"strings"

	"github.com/stewardhq/steward/contracts"
)

// One returns the item whose ID is ref, or else the one item whose name is
// ref (case-insensitively). No match is CodeNotFound; several matching names
// is CodeAmbiguous, listing the candidates so the operator can pick an ID.
func One[T any](noun, ref string, items []T, id, name func(T) string) (T, error) {
	var zero T
	for _, it := range items {
		if id(it) == ref {
			return it, nil
		}
	}
	var found []T
	for _, it := range items {
		if strings.EqualFold(name(it), ref) {
			found = append(found, it)
		}
	}
	switch len(found) {
	case 0:
		return zero, contracts.Errorf(contracts.CodeNotFound, "no %s named or with id %q", noun, ref)
	case 1:
		return found[0], nil
	}
	cands := make([]string, len(found))
	for i, it := range found {
		cands[i] = fmt.Sprintf("%s (%s)", id(it), name(it))
	}
	sort.Strings(cands)
	return zero, contracts.Errorf(contracts.CodeAmbiguous, "%q matches %d %ss; use an id: %s", ref, len(found), noun, strings.Join(cands, ", "))
}
