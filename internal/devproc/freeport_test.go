package devproc

import (
	"net"
	"strconv"
	"testing"
)

// A port FreePort hands out is outside the kernel's ephemeral range (where outgoing connections
// take their source ports), bindable, and never handed out twice.
func TestFreePortIsBelowTheEphemeralRangeAndUnique(t *testing.T) {
	lo := ephemeralLow()
	seen := map[int]bool{}
	for range 300 {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if port >= lo || port < 1024 {
			t.Fatalf("port %d is not below the ephemeral range (from %d)", port, lo)
		}
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
	}
	port, _ := FreePort()
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("the port FreePort returned cannot be bound: %v", err)
	}
	ln.Close()
}
