package cli

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/stewardhq/steward/services/client"
)

// identityPath is the identity file connect reads: --identity (or
// STEWARD_IDENTITY), else ./steward-data/admin.nk when it exists.
func (g *globals) identityPath() string {
	if g.identity != "" {
		return g.identity
	}
	def := DefaultDataDir + "/admin.nk"
	if _, err := os.Stat(def); err == nil {
		return def
	}
	return ""
}

// siteNotShadowed is for a command whose own --site (destination sites,
// dests) hides the global --site: every --site on the line, before the
// command or after it, is a destination, and the site to talk to comes
// only from STEWARD_SITE or the identity file. When neither says it, or a
// destination is that site (a global --site given out of habit), the
// error says so, rather than connect's "pass --site", which cannot work
// here, or the site's "is this site".
func (g *globals) siteNotShadowed(dests []string) error {
	path := g.identityPath()
	id, err := client.ReadIdentity(path)
	if err != nil {
		return nil // connecting says what is wrong with the file
	}
	here := g.site // STEWARD_SITE
	if here == "" {
		here = id.Site
	}
	if here == "" {
		return fmt.Errorf("identity %s does not say its site, and --site here names the destination sites (%s), not the site to talk to "+
			"(this command's own --site hides the global one): set STEWARD_SITE=CODE, or add a line \"# site: CODE\" to %s",
			path, strings.Join(dests, ", "), path)
	}
	if slices.Contains(dests, here) {
		return fmt.Errorf("--site %s is the site this command talks to, not a destination: here every --site names a destination "+
			"(this command's own --site hides the global one); drop it, the identity file or STEWARD_SITE says the site", here)
	}
	return nil
}
