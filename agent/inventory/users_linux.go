package inventory

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"os/exec"
	"slices"
	"strings"
)

// The glibc utmp record (utmp(5)), the same size on every Linux
// architecture: ut_type is a short at offset 0, ut_user a NUL-padded
// [32]byte at offset 44.
const (
	utmpSize        = 384
	utmpUserOffset  = 44
	utmpUserLen     = 32
	utmpUserProcess = 7 // USER_PROCESS: a logged-on user
)

// LoggedOnUsers implements UserLister.
func (l *Linux) LoggedOnUsers(ctx context.Context) ([]string, error) { return l.users(ctx) }

// users lists the logged-on users from utmp, or from `who` when there is
// no utmp (musl systems do not write one, containers often have none).
// With neither, nobody is recorded as logged on: that is not an error.
func (l *Linux) users(ctx context.Context) ([]string, error) {
	data, err := l.readFirst("var/run/utmp", "run/utmp")
	if err == nil {
		return parseUtmp(data), nil
	}
	out, werr := l.run(ctx, "who")
	switch {
	case werr == nil:
		return parseWho(out), nil
	case errors.Is(err, fs.ErrNotExist) && errors.Is(werr, exec.ErrNotFound):
		return []string{}, nil
	}
	return []string{}, errors.Join(err, werr)
}

// parseUtmp returns the users of the USER_PROCESS records of a utmp file,
// unique and sorted. A partial record at the end (being written) is
// ignored.
func parseUtmp(data []byte) []string {
	var users []string
	for ; len(data) >= utmpSize; data = data[utmpSize:] {
		rec := data[:utmpSize]
		if int16(binary.NativeEndian.Uint16(rec[0:2])) != utmpUserProcess {
			continue
		}
		user := rec[utmpUserOffset : utmpUserOffset+utmpUserLen]
		if i := bytes.IndexByte(user, 0); i >= 0 {
			user = user[:i]
		}
		if len(user) > 0 {
			users = append(users, string(user))
		}
	}
	return uniqueSorted(users)
}

// parseWho returns the users (first column) of who's output, unique and
// sorted.
func parseWho(out []byte) []string {
	var users []string
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) > 0 {
			users = append(users, f[0])
		}
	}
	return uniqueSorted(users)
}

// adminGroups are the groups whose members administer the machine through
// sudo or su: sudo (Debian, Ubuntu), wheel (Red Hat, SUSE, Arch, Alpine),
// admin (Ubuntu before 12.04).
var adminGroups = map[string]bool{"sudo": true, "wheel": true, "admin": true}

// admins lists the local administrators: the members of the admin groups,
// listed in etc/group or by their primary group in etc/passwd, and every
// account of uid 0. Only local files are read: directory services (LDAP,
// SSSD) and sudoers rules are not.
func (l *Linux) admins() ([]string, error) {
	admins := []string{}
	gids := make(map[string]bool) // of the admin groups
	group, gerr := l.readFile("etc/group")
	if gerr == nil {
		for _, f := range colonLines(group) {
			if len(f) < 4 || !adminGroups[f[0]] {
				continue
			}
			gids[f[2]] = true
			for m := range strings.SplitSeq(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					admins = append(admins, m)
				}
			}
		}
	}
	passwd, perr := l.readFile("etc/passwd")
	if perr == nil {
		for _, f := range colonLines(passwd) {
			if len(f) >= 4 && (f[2] == "0" || gids[f[3]]) {
				admins = append(admins, f[0])
			}
		}
	}
	return uniqueSorted(admins), errors.Join(gerr, perr)
}

// colonLines splits the lines of a passwd(5) or group(5) file into their
// fields, skipping blank lines, comments and NIS "+"/"-" entries.
func colonLines(data []byte) [][]string {
	var out [][]string
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out
}

// uniqueSorted sorts s and removes duplicates; never nil.
func uniqueSorted(s []string) []string {
	if s == nil {
		return []string{}
	}
	slices.Sort(s)
	return slices.Compact(s)
}
