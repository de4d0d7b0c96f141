package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/careflow-health/careflow/internal/bench"
	"github.com/careflow-health/careflow/internal/freeport"
	"github.com/careflow-health/careflow/internal/load"
)

// peer is another HL7 engine's MLLP listener, started as a process on a
// port: it only ACKs, with no persistence.
type peer struct {
	name string
	cmd  func(port string) *exec.Cmd
}

var peers = []peer{
	{"medplum_hl7", func(port string) *exec.Cmd {
		return exec.Command("node", "internal/bench/peers/medplum/server.mjs", port)
	}},
	{"python_hl7", func(port string) *exec.Cmd {
		return exec.Command("/usr/bin/python3", "internal/bench/peers/python_hl7_server.py", port)
	}},
}

// runPeers measures, in each round, careflow's ingest and each peer at 1
// and 8 connections (closed loop, n messages), so the ratios pair figures
// from the same round.
func (s *suite) runPeers(ctx context.Context, n int) error {
	mix, err := bench.LoadMix(examples)
	if err != nil {
		return err
	}
	samples := map[string][]float64{}
	for round := range s.runs {
		s.logf("round %d of %d: careflow ingest and peers", round+1, s.runs)
		for _, conns := range []int{1, 8} {
			res, err := withDir(func(dir string) (bench.IngestResult, error) {
				return bench.Ingest(ctx, demoConfig, examples, dir, "", conns, n, s.sz.latencyFor)
			})
			if err != nil {
				return err
			}
			key := fmt.Sprintf("ingest.conns_%d.rate", conns)
			samples[key] = append(samples[key], res.Peak.Rate)
		}
		for _, p := range peers {
			for _, conns := range []int{1, 8} {
				rate, err := s.peerRate(ctx, p, mix, conns, n)
				if err != nil {
					return fmt.Errorf("peer %s: %w", p.name, err)
				}
				key := fmt.Sprintf("peer.%s.conns_%d", p.name, conns)
				samples[key] = append(samples[key], rate)
			}
		}
	}
	for _, conns := range []string{"1", "8"} {
		s.add("ingest.conns_"+conns+".rate", "msgs/s", "go run ./internal/bench/suite -peers (bench.Ingest, durable acks=all write before the ACK)", "", samples["ingest.conns_"+conns+".rate"])
		for _, p := range peers {
			name := "peer." + p.name + ".conns_" + conns
			s.add(name, "msgs/s", fmt.Sprintf("go run ./internal/bench/suite -peers (%s: ACK only, no persistence; %d messages closed loop over %s connections)", p.name, n, conns), "", samples[name])
			s.addRatio("careflow ingest ÷ "+p.name+", "+conns+" conn", "careflow with a durable write beside a peer that only ACKs", "ingest.conns_"+conns+".rate", name)
		}
	}
	return nil
}

func (s *suite) peerRate(ctx context.Context, p peer, mix *bench.Mix, conns, n int) (float64, error) {
	port, err := freeport.Port()
	if err != nil {
		return 0, err
	}
	cmd := p.cmd(strconv.Itoa(port))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("not listening on %s after 20s: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond) // polling for the process to listen
	}
	res, err := load.Run(ctx, load.Config{Addr: addr, Count: n, Connections: conns,
		Message: func(seq int) []byte { return mix.Message("P", seq) }})
	if err != nil {
		return 0, err
	}
	if res.AA != n {
		return 0, fmt.Errorf("%d of %d messages acknowledged AA", res.AA, n)
	}
	return res.Rate, nil
}
