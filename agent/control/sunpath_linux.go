package control

// sunPathSize is the size of sockaddr_un.sun_path on Linux, terminating
// NUL included.
const sunPathSize = 108
