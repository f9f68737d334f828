// Go `net` echo server: the peer of GreenThreads' echo-server example.
//
// One goroutine per connection, as idiomatic Go servers are written; the
// netpoller parks a goroutine whose socket has no data. GOMAXPROCS is the
// worker count.
//
// Usage: go-echo PORT [--workers N]
// Serves TCP echo on 127.0.0.1:PORT until killed and prints
// "listening on 127.0.0.1:PORT" once it accepts connections.
package main

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "go-echo: %s\nusage: go-echo PORT [--workers N]\n", msg)
	os.Exit(2)
}

func serve(c net.Conn) {
	defer c.Close()
	// 64-byte messages: one small buffer, reused for the connection's life.
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // io.EOF: the client is done
			return
		}
	}
}

func main() {
	args := os.Args[1:]
	var rest []string
	for i := 0; i < len(args); i++ {
		if args[i] == "--workers" {
			if i+1 >= len(args) {
				usage("--workers needs a positive integer")
			}
			n, err := strconv.Atoi(args[i+1])
			if err != nil || n <= 0 {
				usage("--workers needs a positive integer")
			}
			runtime.GOMAXPROCS(n)
			i++
			continue
		}
		rest = append(rest, args[i])
	}
	if len(rest) != 1 {
		usage("expected one PORT argument")
	}
	port, err := strconv.Atoi(rest[0])
	if err != nil || port < 0 || port > 65535 {
		usage("PORT must be an integer in 0...65535")
	}

	// 1,000 client connections need more descriptors than the usual soft
	// limit (Go 1.19+ raises it itself; older toolchains do not).
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}

	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-echo: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			// EMFILE and friends: back off as net/http does, do not spin.
			fmt.Fprintf(os.Stderr, "go-echo: accept: %v\n", err)
			time.Sleep(5 * time.Millisecond)
			continue
		}
		go serve(c)
	}
}
