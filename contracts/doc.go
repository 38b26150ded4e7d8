// Package contracts is the wire contract of Steward: NATS subjects and the
// functions that build them, the message types that travel on them, the wire
// error-code table and the agent capability version.
//
// Every part of Steward (services, agent, CLI) speaks only through these
// types. The package depends on the standard library and google/uuid only, so
// that anything can import it; TestImports keeps it that way.
//
// Compatibility rule: within a v1 type string only add fields. A breaking
// change gets a new type string. Golden files in testdata/ guard the format.
package contracts
