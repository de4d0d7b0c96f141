package hl7v2

import "bytes"

// Header holds the MSH fields routing and acknowledgement need, unescaped.
// Composite fields the ACK echoes back whole (the HD fields MSH-3 to MSH-6
// and the PT field MSH-11) keep their components, joined with the
// message's own component separator, so "LAB^1.2.3^ISO" survives a round
// trip through BuildACK.
type Header struct {
	FieldSep             string // MSH-1
	EncodingChars        string // MSH-2, verbatim
	SendingApplication   string // MSH-3
	SendingFacility      string // MSH-4
	ReceivingApplication string // MSH-5
	ReceivingFacility    string // MSH-6
	DateTime             string // MSH-7.1
	Security             string // MSH-8
	MessageType          string // MSH-9.1 ("ADT")
	TriggerEvent         string // MSH-9.2 ("A01"); EVN-1 when MSH-9.2 is empty (2.1/2.2 feeds)
	MessageStructure     string // MSH-9.3 ("ADT_A01"), 2.3.1+
	ControlID            string // MSH-10
	ProcessingID         string // MSH-11 ("P", "T^T")
	Version              string // MSH-12.1 ("2.5.1")
	AcceptAckType        string // MSH-15
	AppAckType           string // MSH-16
	Charset              string // MSH-18, first repetition ("8859/1", "UNICODE UTF-8")
}

// Header returns the MSH fields. It allocates one string for the whole MSH
// and slices it, plus one per field that holds escape sequences.
func (m *Message) Header() Header {
	seg := m.seg(m.segs[0])
	h := headerOf(seg)
	if h.TriggerEvent == "" {
		if evn, ok := m.Segment("EVN"); ok {
			h.TriggerEvent = evn.Field(1).String()
		}
	}
	return h
}

// PeekHeader reads the MSH of anything, best effort, so that a receiver can
// acknowledge or dead-letter input Parse rejects. It never fails or panics:
// it looks for "MSH" in the first 4 KB, takes the delimiters it declares
// when they are usable and DefaultDelimiters (with its field separator, if
// sane) otherwise, and reads the MSH up to the first line break. Without an
// MSH it returns a zero Header.
func PeekHeader(data []byte) (Header, Delimiters) {
	seg, ok := peekMSH(data)
	if !ok {
		return Header{}, DefaultDelimiters
	}
	return headerOf(seg), seg.d
}

// peekMSH finds the MSH as PeekHeader does and returns it up to the first
// line break, with the delimiters PeekHeader uses. It does not allocate,
// so DecodeMessage can read MSH-18 on the hot path.
func peekMSH(data []byte) (Segment, bool) {
	d := DefaultDelimiters
	window := data
	if len(window) > 4096 {
		window = window[:4096]
	}
	i := bytes.Index(window, mshID)
	if i < 0 {
		return Segment{}, false
	}
	data = data[i:]
	if len(data) > 3 && delimOK(data[3]) && data[3] != '\r' && data[3] != '\n' {
		if got, err := mshDelims(data); err == nil {
			d = got
		} else {
			d.Field = data[3]
			if d.Field == d.Component || d.Field == d.Repetition || d.Field == d.Escape || d.Field == d.Subcomponent {
				d = DefaultDelimiters
			}
		}
	}
	// The end of a message may be framing or padding (0x1c, 0x0b, NUL,
	// line breaks), which Parse strips: so must an MSH that is the whole
	// message. Then two vectorised searches, which beat one IndexAny.
	data = trimTail(data)
	if j := bytes.IndexByte(data, '\r'); j >= 0 {
		data = data[:j]
	}
	if j := bytes.IndexByte(data, '\n'); j >= 0 {
		data = data[:j]
	}
	return Segment{b: data, d: d, msh: true}, true
}

// headerOf fills a Header from an MSH segment with one allocation for the
// segment text.
func headerOf(seg Segment) Header {
	all := string(seg.b)
	str := func(f Field) string {
		if len(f.b) == 0 {
			return ""
		}
		if f.lvl != lvlLiteral && f.d.Escape != 0 && bytes.IndexByte(f.b, f.d.Escape) >= 0 {
			return f.String()
		}
		// f.b aliases seg.b; the same bytes sit at the same offset in all.
		off := cap(seg.b) - cap(f.b)
		return all[off : off+len(f.b)]
	}
	msgType := seg.Field(9)
	return Header{
		FieldSep:             str(seg.Field(1)),
		EncodingChars:        str(seg.Field(2)),
		SendingApplication:   str(seg.Field(3)),
		SendingFacility:      str(seg.Field(4)),
		ReceivingApplication: str(seg.Field(5)),
		ReceivingFacility:    str(seg.Field(6)),
		DateTime:             str(seg.Field(7).Component(1)),
		Security:             str(seg.Field(8)),
		MessageType:          str(msgType.Component(1)),
		TriggerEvent:         str(msgType.Component(2)),
		MessageStructure:     str(msgType.Component(3)),
		ControlID:            str(seg.Field(10)),
		ProcessingID:         str(seg.Field(11)),
		Version:              str(seg.Field(12).Component(1)),
		AcceptAckType:        str(seg.Field(15)),
		AppAckType:           str(seg.Field(16)),
		Charset:              str(seg.Field(18).Rep(1)),
	}
}
