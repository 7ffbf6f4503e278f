//go:build faults

package e2e

// Slow clients against the real binary: `gatehouse serve` sets
// ReadHeaderTimeout 10s, ReadTimeout 30s and MaxHeaderBytes 64 KiB
// (cmd/gatehouse/main.go). A slowloris client that trickles its headers is
// cut off, and many of them do not keep others from being served.

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFaultSlowClients(t *testing.T) {
	gh := startGatehouse(t, t.TempDir(), nil)
	gh.waitReady(30 * time.Second)
	addr := strings.TrimPrefix(gh.URL, "http://")

	// 200 connections that send a header byte every 500 ms.
	const n = 200
	type result struct {
		closedAfter time.Duration
		err         error
	}
	results := make(chan result, n)
	var wg sync.WaitGroup
	start := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer c.Close()
			req := "GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\nX-Slow: " + strings.Repeat("a", 100)
			for i := 0; ; i++ {
				if _, err := c.Write([]byte{req[i%len(req)]}); err != nil {
					results <- result{closedAfter: time.Since(start)}
					return
				}
				// A closed connection shows on read.
				_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				buf := make([]byte, 512)
				if _, err := c.Read(buf); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						if time.Since(start) > 40*time.Second {
							results <- result{closedAfter: time.Since(start)}
							return
						}
						continue
					}
					// EOF or a 408 answer then EOF: cut off.
					results <- result{closedAfter: time.Since(start)}
					return
				}
				// Something was answered (a 408 or 400): the server gave up on us.
				results <- result{closedAfter: time.Since(start)}
				return
			}
		}()
	}
	// Meanwhile a normal client is served at once.
	time.Sleep(2 * time.Second)
	for range 5 {
		t0 := time.Now()
		if code, err := httpStatus(gh.URL + "/readyz"); err != nil || code != 200 {
			t.Fatalf("normal request during the slowloris: %d %v", code, err)
		}
		if d := time.Since(t0); d > time.Second {
			t.Errorf("normal request took %s during the slowloris", d)
		}
	}
	wg.Wait()
	close(results)
	worst := time.Duration(0)
	for r := range results {
		if r.err != nil {
			t.Fatalf("dial: %v", r.err)
		}
		worst = max(worst, r.closedAfter)
	}
	t.Logf("%d slow-header connections all cut off; the last after %s (ReadHeaderTimeout 10s)", n, worst.Round(100*time.Millisecond))
	if worst > 15*time.Second {
		t.Errorf("a slow-header connection lived %s, past ReadHeaderTimeout", worst)
	}

	// Headers over MaxHeaderBytes are refused.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\nX-Big: " + strings.Repeat("a", 200<<10) + "\r\n\r\n"))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("oversized header: %v", err)
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized header: %d, want 431", resp.StatusCode)
	}
}
