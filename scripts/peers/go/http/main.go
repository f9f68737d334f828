// Go net/http hello server: the peer of GreenThreads' http-hello example.
//
// The standard library's server as idiomatic Go writes it: http.Serve on a
// listener, one goroutine per connection, keep-alive on. GET / answers
// "Hello, world!\n" as text/plain; charset=utf-8, the body http-hello sends.
// GOMAXPROCS is the worker count.
//
// Usage: go-http PORT [--workers N]
// Serves 127.0.0.1:PORT until killed and prints
// "listening on 127.0.0.1:PORT" once it accepts connections.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"syscall"
)

const greeting = "Hello, world!\n"

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "go-http: %s\nusage: go-http PORT [--workers N]\n", msg)
	os.Exit(2)
}

func hello(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(greeting)))
	io.WriteString(w, greeting)
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
		fmt.Fprintf(os.Stderr, "go-http: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	mux := http.NewServeMux()
	mux.HandleFunc("/", hello)
	// http.Serve backs off on accept errors (EMFILE) by itself.
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintf(os.Stderr, "go-http: %v\n", err)
		os.Exit(1)
	}
}
