package rpc

import (
	"context"
	"testing"
)

func benchCall(b *testing.B, size int) {
	eps := newTCPCluster(b, 2, Options{})
	eps[1].Handle("echo", echo)
	req := echoReq{Data: make([]byte, size)}
	b.SetBytes(int64(size))
	b.ResetTimer()
	for b.Loop() {
		if err := eps[0].Call(context.Background(), "n2", "echo", req, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCall is one round trip with a small body over loopback TCP.
func BenchmarkCall(b *testing.B) { benchCall(b, 16) }

// BenchmarkCall1MiB sends 1 MiB and gets it echoed back.
func BenchmarkCall1MiB(b *testing.B) { benchCall(b, 1<<20) }

// BenchmarkCallParallel is small calls from many goroutines on one connection.
func BenchmarkCallParallel(b *testing.B) {
	eps := newTCPCluster(b, 2, Options{})
	eps[1].Handle("echo", echo)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := eps[0].Call(context.Background(), "n2", "echo", echoReq{Text: "x"}, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
