// Package messages holds synthetic HL7 v2 messages (fictitious patients),
// one file each, that an operator sends to the demo estate with
// `careflow send`; the package has no code, only a test that keeps the
// files honest (each parses and passes the accept rules of the interface
// it is meant for in examples/demo/careflow.yaml).
package messages
