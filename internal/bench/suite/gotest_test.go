package main

import (
	"reflect"
	"testing"
)

func TestParseBench(t *testing.T) {
	out := []byte(`goos: linux
BenchmarkScan-2   	 4819446	       249.0 ns/op	 8683.12 MB/s	       0 B/op	       0 allocs/op
BenchmarkScan-2   	 4819446	       251.0 ns/op	 8600.00 MB/s	       0 B/op	       0 allocs/op
BenchmarkParse/ADT_2KB-2 	 1000000	      1220 ns/op	 488 B/op	       5 allocs/op
BenchmarkRunnerCopy/MaxRecords=100-2   100000   12210 ns/op   81932 records/s
PASS
`)
	want := map[string][]float64{
		"BenchmarkScan ns/op": {249, 251}, "BenchmarkScan MB/s": {8683.12, 8600}, "BenchmarkScan B/op": {0, 0}, "BenchmarkScan allocs/op": {0, 0},
		"BenchmarkParse/ADT_2KB ns/op": {1220}, "BenchmarkParse/ADT_2KB B/op": {488}, "BenchmarkParse/ADT_2KB allocs/op": {5},
		"BenchmarkRunnerCopy/MaxRecords=100 ns/op": {12210}, "BenchmarkRunnerCopy/MaxRecords=100 records/s": {81932},
	}
	if got := parseBench(out); !reflect.DeepEqual(got, want) {
		t.Errorf("parseBench =\n%v\nwant\n%v", got, want)
	}
}

func TestMedianAndRatio(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{7}, 7}, {nil, 0},
	}
	for _, tc := range tests {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	// Ratios pair run i with run i, then take the median.
	if got := pairRatio([]float64{10, 20, 30}, []float64{5, 5, 10}); got != 3 {
		t.Errorf("pairRatio = %v, want 3 (median of 2, 4, 3)", got)
	}
}
