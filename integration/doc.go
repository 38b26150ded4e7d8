// Package integration holds Steward's end-to-end tests: a real site (the
// embedded nats-server with JetStream on disk and the auth callout) and real
// agents in one process, driven through the operator client.
package integration
