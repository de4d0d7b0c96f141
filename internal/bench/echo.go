package bench

import (
	"net"
	"sync"

	"github.com/careflow-health/careflow/connectors/mllp"
)

// echoACK is the fixed reply of the echo server: a valid AA, so the load
// generator counts it as it counts the engine's.
var echoACK = []byte("MSH|^~\\&|ECHO|BENCH|LOAD|BENCH|20250101000000||ACK^A01^ACK|1|P|2.5.1\rMSA|AA|1\r")

// StartEcho starts the MLLP echo limit server: per connection, read a
// frame, write the fixed ACK; no parsing, no persistence. stop closes the
// listener and every connection and waits for their goroutines.
func StartEcho() (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
	)
	frame := mllp.AppendFrame(nil, echoACK)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				r := mllp.NewReader(c, 0)
				for {
					if _, err := r.ReadFrame(); err != nil {
						return
					}
					if _, err := c.Write(frame); err != nil {
						return
					}
				}
			})
		}
	})
	stop = func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
	return ln.Addr().String(), stop, nil
}
