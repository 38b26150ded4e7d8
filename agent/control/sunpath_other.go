//go:build !linux

package control

// sunPathSize is the size of sockaddr_un.sun_path on the BSDs and macOS
// (104), the smallest of the systems Go supports unix sockets on; Windows
// allows 108, so this is conservative there.
const sunPathSize = 104
