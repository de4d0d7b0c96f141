package mllp

import (
	"context"
	"strings"
	"testing"
)

// BenchmarkEcho measures one message round trip (frame, handler, reply) over
// loopback on one connection, the shape of an HL7 sender awaiting each ACK.
func BenchmarkEcho(b *testing.B) {
	reply := []byte("MSH|^~\\&|CAREFLOW||||||ACK||P|2.5\rMSA|AA|1\r")
	s := &Server{Handler: HandlerFunc(func(context.Context, Request) []byte { return reply })}
	addr := startServer(b, s)
	c := &Client{Addr: addr}
	defer c.Close()
	msg := []byte("MSH|^~\\&|LAB|HOSP|||20240101||ORU^R01|1|P|2.5\r" + strings.Repeat("OBX|1|ST|x^y||value||||||F\r", 20))
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := c.Send(context.Background(), msg); err != nil {
			b.Fatal(err)
		}
	}
}
