package replication

import (
	"fmt"
	"strconv"
	"strings"
)

// KV keys. A key is made of tokens joined by '.', and a KV key may hold
// only letters, digits and "-/_=.". Package names need no escaping; every
// other token (versions hold '.', site codes and client IDs are subject
// tokens that may hold more) goes through keyToken, which writes every byte
// outside [A-Za-z0-9_-] as "=XX" (its hex value): "1.0" is "1=2E0". The
// escape is injective, so a key names one object, and a token never holds
// '.', so "<package>.*" matches exactly the versions of a package.

// keyToken escapes s for use as one token of a KV key.
func keyToken(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "=%02X", c)
	}
	return b.String()
}

// unkeyToken reverses keyToken.
func unkeyToken(t string) (string, error) {
	if !strings.Contains(t, "=") {
		return t, nil
	}
	var b strings.Builder
	for i := 0; i < len(t); i++ {
		if t[i] != '=' {
			b.WriteByte(t[i])
			continue
		}
		if i+2 >= len(t) {
			return "", fmt.Errorf("key token %q: truncated escape", t)
		}
		n, err := strconv.ParseUint(t[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("key token %q: bad escape: %w", t, err)
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), nil
}

// versionKey is the key of a package version: "<package>.<version>"
// (packages, replication-jobs prefix, package-deployments prefix).
func versionKey(pkg, version string) string { return pkg + "." + keyToken(version) }

// inboxKey is the key of an offer from site from: "<from>.<package>.<version>".
func inboxKey(from, pkg, version string) string {
	return keyToken(from) + "." + versionKey(pkg, version)
}

// jobKey is the key of the job sending a version to site dest:
// "<package>.<version>.<dest>".
func jobKey(pkg, version, dest string) string { return versionKey(pkg, version) + "." + keyToken(dest) }

// deploymentKey is the key of a version's deployment to a collection:
// "<package>.<version>.<collection ID>".
func deploymentKey(pkg, version, collection string) string {
	return versionKey(pkg, version) + "." + keyToken(collection)
}

// clientKey is the key of a client's report on a version:
// "<client>.<package>.<version>".
func clientKey(client, pkg, version string) string {
	return keyToken(client) + "." + versionKey(pkg, version)
}

// quarantineKey is the key of one quarantined item: its ID.
func quarantineKey(id string) string { return keyToken(id) }

// quarantineDataKey is the key of the bytes kept of quarantined item id.
func quarantineDataKey(id string) string { return quarantineDataPrefix + keyToken(id) }

// quarantineDataPrefix starts the keys of kept bytes; no ID does (IDs are
// UUIDs).
const quarantineDataPrefix = "data."
