// This file fuzzes PeekHeader, which reads the header of input Parse may
// reject so that the receiver can still acknowledge and dead-letter it.

package hl7v2

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzPeekHeader: PeekHeader never panics or modifies its input; its
// delimiters are always usable; without "MSH" in the first 4 KB it
// returns the zero Header; the AR a receiver builds from what it found
// always parses as an ACK of the control id found; and when Parse accepts
// the input, PeekHeader agrees with it on the delimiters, MessageType,
// TriggerEvent and ControlID (Header takes the trigger from EVN-1 when
// MSH-9.2 is empty, PeekHeader reads only the MSH).
//
// testdata/fuzz/FuzzPeekHeader holds two inputs it once failed on: an MSH
// continued on another line (Parse now refuses it) and an MSH ending in
// framing bytes (PeekHeader now strips them as Parse does).
func FuzzPeekHeader(f *testing.F) {
	for _, data := range messageSeeds(f) {
		f.Add(data)
	}
	f.Add([]byte("<html>502 Bad Gateway</html>\rMSH|^~\\&|A|B|C|D|20240101||ADT^A01|C1|P|2.5"))
	f.Add([]byte("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|C\\F\\1|P|2.5\rEVN|A01"))
	f.Add([]byte("MSH|^^^^|A|B|C|D|20240101||ADT^A01|C1|P|2.5"))
	f.Add([]byte("MSHa^~\\&"))
	f.Add([]byte("MSH"))
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		h, d := PeekHeader(data)
		if !bytes.Equal(data, orig) {
			t.Fatal("input modified")
		}
		if !d.Valid() {
			t.Fatalf("PeekHeader returned unusable delimiters %+v", d)
		}
		if window := data[:min(len(data), 4096)]; !bytes.Contains(window, mshID) && (h != Header{} || d != DefaultDelimiters) {
			t.Fatalf("no MSH in the first 4 KB, yet PeekHeader found %+v with %+v", h, d)
		}

		// What ingest does with input it rejects: an AR built from the
		// header PeekHeader recovered.
		ack := BuildACK(h, d, AckAR, ACKOptions{ControlID: "A1", Now: time.Unix(0, 0),
			Errors: []AckError{{Code: "207", Location: "MSH-9"}}})
		a, err := ParseACK(ack)
		if err != nil || a.Code != AckAR || a.ControlID != h.ControlID {
			t.Fatalf("AR for peeked header %+v: %+v, %v\n%q", h, a, err, ack)
		}

		m, err := Parse(data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse error of type %T", err)
			}
			return
		}
		if md := m.Delimiters(); d != md {
			t.Fatalf("PeekHeader delimiters %+v, Parse %+v", d, md)
		}
		hdr := m.Header()
		if h.MessageType != hdr.MessageType || h.ControlID != hdr.ControlID {
			t.Fatalf("PeekHeader read type %q control %q, Parse %q %q", h.MessageType, h.ControlID, hdr.MessageType, hdr.ControlID)
		}
		wantTrigger := h.TriggerEvent
		if wantTrigger == "" {
			if evn, ok := m.Segment("EVN"); ok {
				wantTrigger = evn.Field(1).String()
			}
		}
		if hdr.TriggerEvent != wantTrigger {
			t.Fatalf("PeekHeader read trigger %q (EVN-1 fallback %q), Parse %q", h.TriggerEvent, wantTrigger, hdr.TriggerEvent)
		}
	})
}
