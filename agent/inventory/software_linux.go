package inventory

import (
	"cmp"
	"context"
	"errors"
	"io/fs"
	"os/exec"
	"slices"
	"strings"

	"github.com/stewardhq/steward/contracts"
)

// Package sources, the values of contracts.Software.Source.
const (
	SourceDpkg = "dpkg"
	SourceRPM  = "rpm"
	SourceApk  = "apk"
)

// software lists the installed packages of every package manager present:
// dpkg and apk by their databases, rpm by its command (its database format
// changed over the years). A package manager that is absent is not an
// error; one that fails is, and the others are still listed. The list is
// sorted by name, version and source, without duplicates (the same package
// installed for two architectures is listed once).
func (l *Linux) software(ctx context.Context) ([]contracts.Software, error) {
	all := []contracts.Software{}
	var errs []error
	if data, err := l.readFile("var/lib/dpkg/status"); err == nil {
		all = append(all, parseDpkgStatus(data)...)
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	if out, err := l.run(ctx, "rpm", "-qa", "--queryformat", `%{NAME}\t%{VERSION}-%{RELEASE}\n`); err == nil {
		all = append(all, parseRPM(out)...)
	} else if !errors.Is(err, exec.ErrNotFound) {
		errs = append(errs, err)
	}
	if data, err := l.readFile("lib/apk/db/installed"); err == nil {
		all = append(all, parseApkInstalled(data)...)
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	sortSoftware(all)
	return slices.Compact(all), errors.Join(errs...)
}

// sortSoftware sorts packages by name, version and source.
func sortSoftware(s []contracts.Software) {
	slices.SortFunc(s, func(a, b contracts.Software) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Version, b.Version), cmp.Compare(a.Source, b.Source))
	})
}

// parseDpkgStatus parses dpkg's status database: RFC 822 stanzas separated
// by blank lines; a package is installed when the last word of its Status
// is "installed" ("install ok installed", "hold ok installed"), not when
// only its configuration files remain ("deinstall ok config-files").
func parseDpkgStatus(data []byte) []contracts.Software {
	var pkgs []contracts.Software
	var name, version, status string
	flush := func() {
		if f := strings.Fields(status); name != "" && version != "" && len(f) == 3 && f[2] == "installed" {
			pkgs = append(pkgs, contracts.Software{Name: name, Version: version, Source: SourceDpkg})
		}
		name, version, status = "", "", ""
	}
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\r\n")
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' { // continuation
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch v = strings.TrimSpace(v); k {
		case "Package":
			name = v
		case "Version":
			version = v
		case "Status":
			status = v
		}
	}
	flush()
	return pkgs
}

// parseRPM parses the output of rpm -qa with the query format
// "%{NAME}\t%{VERSION}-%{RELEASE}\n". The gpg-pubkey pseudo-packages
// (imported signing keys) are not software and are left out.
func parseRPM(out []byte) []contracts.Software {
	var pkgs []contracts.Software
	for line := range strings.Lines(string(out)) {
		name, version, ok := strings.Cut(strings.TrimRight(line, "\r\n"), "\t")
		if !ok || name == "" || name == "gpg-pubkey" {
			continue
		}
		pkgs = append(pkgs, contracts.Software{Name: name, Version: version, Source: SourceRPM})
	}
	return pkgs
}

// parseApkInstalled parses apk's database: one stanza per package separated
// by blank lines, "P:" naming the package and "V:" its version.
func parseApkInstalled(data []byte) []contracts.Software {
	var pkgs []contracts.Software
	var name, version string
	flush := func() {
		if name != "" && version != "" {
			pkgs = append(pkgs, contracts.Software{Name: name, Version: version, Source: SourceApk})
		}
		name, version = "", ""
	}
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			flush()
		case strings.HasPrefix(line, "P:"):
			name = line[2:]
		case strings.HasPrefix(line, "V:"):
			version = line[2:]
		}
	}
	flush()
	return pkgs
}
