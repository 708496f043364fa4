// goheap.go - a Go heap profile (runtime/pprof) of an exactly known heap:
// 100 blocks of 1 MiB live from main.grow, every allocation sampled.
// `memshim profile` reads it as it reads memshim's own pprof files.
package main

import (
	"os"
	"runtime"
	"runtime/pprof"
)

var keep [][]byte

//go:noinline
func grow() {
	for i := 0; i < 100; i++ {
		keep = append(keep, make([]byte, 1<<20))
	}
}

func main() {
	runtime.MemProfileRate = 1
	grow()
	runtime.GC()
	f, err := os.Create(os.Args[1])
	if err != nil {
		panic(err)
	}
	pprof.WriteHeapProfile(f)
	f.Close()
}
