// Command guest is the Go test guest of the wazero shim. Its first argument picks what it does;
// see package wazeroguest.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	args := os.Args[1:]
	mode := "hello"
	if len(args) > 0 {
		mode, args = args[0], args[1:]
	}
	switch mode {
	case "hello": // hello [words...]: one line on stdout, one on stderr
		fmt.Printf("hello from wasm: argv=%q\n", os.Args)
		fmt.Fprintln(os.Stderr, "hello on stderr")
	case "exit": // exit CODE
		fmt.Println("exiting with", args[0])
		os.Exit(atoi(args[0]))
	case "sleep": // sleep: block in poll_oneoff for an hour
		fmt.Println("sleeping")
		time.Sleep(time.Hour)
		fmt.Println("woke up")
	case "spin": // spin: busy loop without calls
		fmt.Println("spinning")
		n := 0
		for {
			n++
		}
	case "burn": // burn SECONDS: busy loop for that long, then exit 0
		fmt.Println("burning")
		end := time.Now().Add(time.Duration(atoi(args[0])) * time.Second)
		for time.Now().Before(end) {
		}
		fmt.Println("burnt")
	case "grow": // grow MIB: allocate and touch MIB MiB, one MiB at a time
		var keep [][]byte
		for i := 1; i <= atoi(args[0]); i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			keep = append(keep, b)
			if i%16 == 0 {
				fmt.Println("allocated MiB:", i)
			}
		}
		fmt.Println("allocated all", len(keep))
	case "cat": // cat PATH
		b, err := os.ReadFile(args[0])
		if err != nil {
			fmt.Fprintln(os.Stderr, "cat:", err)
			os.Exit(3)
		}
		os.Stdout.Write(b)
	case "write": // write PATH TEXT
		if err := os.WriteFile(args[0], []byte(strings.Join(args[1:], " ")), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			os.Exit(3)
		}
		fmt.Println("wrote", args[0])
	case "create": // create DIR...: in each DIR a file, a directory and a file in that directory
		for _, dir := range args {
			for _, err := range []error{
				os.WriteFile(dir+"/file", []byte("x"), 0o666),
				os.Mkdir(dir+"/dir", 0o777),
				os.WriteFile(dir+"/dir/file", []byte("x"), 0o666),
			} {
				if err != nil {
					fmt.Fprintln(os.Stderr, "create:", err)
					os.Exit(3)
				}
			}
		}
		fmt.Println("created")
	case "env": // env NAME...
		for _, k := range args {
			fmt.Printf("%s=%s\n", k, os.Getenv(k))
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", mode)
		os.Exit(64)
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(64)
	}
	return n
}
