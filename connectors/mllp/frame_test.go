package mllp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

const (
	sb = "\x0b"
	eb = "\x1c"
	cr = "\r"
)

// step is one expected ReadFrame result.
type step struct {
	payload string
	err     error // nil, a sentinel, or io.EOF
}

func TestReaderReadFrame(t *testing.T) {
	big := strings.Repeat("x", 100)
	tests := []struct {
		name  string
		input string
		max   int
		want  []step
	}{
		{"good frame", sb + "MSH|a" + eb + cr, 0, []step{{"MSH|a", nil}, {"", io.EOF}}},
		{"empty frame", sb + eb + cr, 0, []step{{"", nil}, {"", io.EOF}}},
		{"two frames back to back", sb + "one" + eb + cr + sb + "two" + eb + cr, 0,
			[]step{{"one", nil}, {"two", nil}, {"", io.EOF}}},
		{"LF between frames", sb + "one" + eb + cr + "\n" + sb + "two" + eb + cr + "\r\n", 0,
			[]step{{"one", nil}, {"two", nil}, {"", io.EOF}}},
		{"no end block then EOF", sb + "MSH|partial", 0, []step{{"", ErrTruncated}}},
		{"start block only", sb, 0, []step{{"", ErrTruncated}}},
		{"oversize then a good frame", sb + big + eb + cr + sb + "next" + eb + cr, 10,
			[]step{{big[:10], ErrTooLarge}, {"next", nil}, {"", io.EOF}}},
		{"exactly max size", sb + big[:10] + eb + cr, 10, []step{{big[:10], nil}, {"", io.EOF}}},
		{"garbage before start block", "HTTP/1.1 GET" + sb + "msg" + eb + cr, 0,
			[]step{{"", ErrNoStartBlock}, {"msg", nil}, {"", io.EOF}}},
		{"missing CR after end block", sb + "one" + eb + sb + "two" + eb, 0,
			[]step{{"one", nil}, {"two", nil}, {"", io.EOF}}},
		{"CR inside payload kept", sb + "MSH|a\rPID|1\r" + eb + cr, 0,
			[]step{{"MSH|a\rPID|1\r", nil}, {"", io.EOF}}},
		{"non-UTF-8 bytes kept", sb + "\xff\xfe\x00é" + eb + cr, 0,
			[]step{{"\xff\xfe\x00é", nil}, {"", io.EOF}}},
		{"only whitespace", "\r\n \n", 0, []step{{"", io.EOF}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.input), tt.max)
			for i, w := range tt.want {
				got, err := r.ReadFrame()
				if !errors.Is(err, w.err) || (w.err == nil && err != nil) {
					t.Fatalf("frame %d: err = %v, want %v", i, err, w.err)
				}
				if string(got) != w.payload {
					t.Fatalf("frame %d: payload = %q, want %q", i, got, w.payload)
				}
			}
		})
	}
}

// oneByteReader returns one byte per Read, as a slow network would.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

func TestReaderOversizeLargerThanBuffer(t *testing.T) {
	// A frame larger than the bufio buffer and the limit: the prefix is
	// kept, the rest skipped, and the next frame read intact.
	body := bytes.Repeat([]byte("0123456789"), 20_000) // 200 kB
	in := AppendFrame(nil, body)
	in = AppendFrame(in, []byte("after"))
	r := NewReader(bytes.NewReader(in), 100_000)
	got, err := r.ReadFrame()
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if !bytes.Equal(got, body[:PrefixSize]) {
		t.Fatalf("prefix length %d, want the first %d bytes", len(got), PrefixSize)
	}
	got, err = r.ReadFrame()
	if err != nil || string(got) != "after" {
		t.Fatalf("next frame = %q, %v", got, err)
	}
}

func TestReaderSlowStream(t *testing.T) {
	in := sb + "MSH|x" + eb + cr + "\n" + sb + "two" + eb + cr
	r := NewReader(oneByteReader{strings.NewReader(in)}, 0)
	for _, want := range []string{"MSH|x", "two"} {
		got, err := r.ReadFrame()
		if err != nil || string(got) != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	}
}

func TestAppendAndWriteFrame(t *testing.T) {
	want := sb + "payload" + eb + cr
	if got := string(AppendFrame([]byte("x"), []byte("payload"))); got != "x"+want {
		t.Fatalf("AppendFrame = %q", got)
	}
	var buf bytes.Buffer
	if err := WriteFrame(&buf, []byte("payload")); err != nil {
		t.Fatal(err)
	}
	if buf.String() != want {
		t.Fatalf("WriteFrame = %q", buf.String())
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte(sb+"MSH|a"+eb+cr), 16)
	f.Add([]byte(sb+"one"+eb+cr+"\n"+sb+"two"+eb), 3)
	f.Add([]byte("junk"+sb+"x"+eb+cr+sb+"trunc"), 8)
	f.Add([]byte(sb+strings.Repeat("y", 300)+eb+cr), 64)
	f.Add([]byte{}, 1)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		if max <= 0 || max > 1<<20 {
			max = 1 << 10
		}
		r := NewReader(bytes.NewReader(data), max)
		// Every call consumes at least one byte or ends, so len(data)+2
		// calls must reach the end.
		for i := 0; i <= len(data)+1; i++ {
			p, err := r.ReadFrame()
			if len(p) > max {
				t.Fatalf("frame of %d bytes returned with limit %d (err %v)", len(p), max, err)
			}
			if err == nil && bytes.IndexByte(p, EndBlock) >= 0 {
				t.Fatalf("payload contains an end block")
			}
			if err == io.EOF || errors.Is(err, ErrTruncated) {
				return
			}
		}
		t.Fatalf("reader did not reach the end of %d bytes", len(data))
	})
}

// loopReader repeats data forever.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

func BenchmarkReadFrame(b *testing.B) {
	msg := []byte(strings.Repeat("OBX|1|ST|code^text^LN||value||||||F\r", 50))
	r := NewReader(&loopReader{data: AppendFrame(nil, msg)}, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := r.ReadFrame(); err != nil {
			b.Fatal(err)
		}
	}
}
