package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// goBench runs `go test -bench` for pattern in pkg with -count runs and
// returns every sample of every metric, keyed "Benchmark/sub unit" (the
// GOMAXPROCS suffix dropped), in run order.
func goBench(pkg, pattern string, runs int, extra ...string) (map[string][]float64, string, error) {
	args := append([]string{"test", "-run", "^$", "-bench", pattern, "-benchmem", "-count", strconv.Itoa(runs)}, extra...)
	args = append(args, pkg)
	cmd := exec.Command("go", args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	command := "go " + strings.Join(args, " ")
	if err != nil {
		return nil, command, fmt.Errorf("%s: %w\n%s", command, err, out)
	}
	return parseBench(out), command, nil
}

// parseBench reads go test -bench output lines such as
//
//	BenchmarkParse/ADT_2KB-2  1000000  1220 ns/op  1774 MB/s  488 B/op  5 allocs/op
func parseBench(out []byte) map[string][]float64 {
	samples := map[string][]float64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			key := name + " " + f[i+1]
			samples[key] = append(samples[key], v)
		}
	}
	return samples
}
