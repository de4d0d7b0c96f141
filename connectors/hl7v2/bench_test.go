package hl7v2

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func benchData(b *testing.B, name string) []byte {
	b.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkScan is the floor Parse is measured against: one pass finding
// segment boundaries, nothing else.
func BenchmarkScan(b *testing.B) {
	data := benchData(b, "bench/adt_a01_2k.hl7")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	n := 0
	for b.Loop() {
		var sc lineScanner
		sc.init(data)
		for {
			_, _, ok := sc.next()
			if !ok {
				break
			}
			n++
		}
	}
	if n == 0 {
		b.Fatal("no lines")
	}
}

// BenchmarkScanFields is the scan limit as issue 4 defines it: one
// zero-allocation pass that finds every segment boundary and every field
// boundary within the segments, and nothing else. Any parser that offers
// field access pays at least this much (Parse defers the field part to
// Get, so it can come in under it).
func BenchmarkScanFields(b *testing.B) {
	data := benchData(b, "bench/adt_a01_2k.hl7")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	fields := 0
	for b.Loop() {
		var sc lineScanner
		sc.init(data)
		for {
			start, end, ok := sc.next()
			if !ok {
				break
			}
			line := data[start:end]
			for i := indexSep(line, '|'); i >= 0; i = indexSep(line, '|') {
				line = line[i+1:]
				fields++
			}
		}
	}
	if fields == 0 {
		b.Fatal("no fields")
	}
}

var sink string

func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct {
		name, file string
		paths      []string
	}{
		{"ADT_2KB", "bench/adt_a01_2k.hl7", []string{"MSH-9.2", "MSH-10", "PID-3[1].1", "PV1-3.1"}},
		{"ORU_multi_OBR", "corpus/oru_r01_v251_multi_obr.hl7", []string{"MSH-10", "PID-3.1", "OBX[5]-5", "OBR[2]-4.1"}},
	} {
		data := benchData(b, bc.file)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				m, err := Parse(data)
				if err != nil {
					b.Fatal(err)
				}
				for _, p := range bc.paths {
					sink = m.Get(p)
				}
			}
		})
		b.Run(bc.name+"_only", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Parse(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkHeader(b *testing.B) {
	m, err := Parse(benchData(b, "bench/adt_a01_2k.hl7"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		sink = m.Header().ControlID
	}
}

func BenchmarkBuildACK(b *testing.B) {
	m, err := Parse(benchData(b, "bench/adt_a01_2k.hl7"))
	if err != nil {
		b.Fatal(err)
	}
	h, d := m.Header(), m.Delimiters()
	opts := ACKOptions{ControlID: "ACK0001", Now: time.Date(2024, 1, 5, 8, 30, 0, 0, time.UTC)}
	b.Run("AA", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = BuildACK(h, d, AckAA, opts)
		}
	})
	opts.Errors = []AckError{{Code: "101", Location: "PID-3[2].1", Text: "missing"}}
	b.Run("AE_one_error", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = BuildACK(h, d, AckAE, opts)
		}
	})
}

func BenchmarkBuilder(b *testing.B) {
	h := Header{SendingApplication: "CAREFLOW", SendingFacility: "CF", ReceivingApplication: "EHR", ReceivingFacility: "HOSP",
		DateTime: "20240105083000", MessageType: "ADT", TriggerEvent: "A01", MessageStructure: "ADT_A01", ControlID: "C1", ProcessingID: "P", Version: "2.5.1"}
	b.ReportAllocs()
	for b.Loop() {
		bl := NewBuilder(DefaultDelimiters)
		bl.MSH(h)
		bl.Segment("EVN").Set("1", "A01").Set("2", "20240105083000")
		bl.Segment("PID").Set("1", "1").Set("3.1", "MRN123").Set("3.4", "HOSP").Set("3.5", "MR").
			Set("5.1", "DOE").Set("5.2", "JANE").Set("7", "19800101").Set("8", "F")
		bl.Segment("PV1").Set("1", "1").Set("2", "I").Set("3.1", "4N").Set("3.2", "412")
		_ = bl.Bytes()
	}
}

func BenchmarkUnescape(b *testing.B) {
	src := []byte(`Lungs are clear \T\ no effusion.\.br\Heart size normal \S\ 0.45.\.br\No acute disease \E\ stable.`)
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		dst = Unescape(dst[:0], src, DefaultDelimiters)
	}
}
