package main

import (
	"bufio"
	"io"
	"os"
	"strings"
	"time"
)

func main() {
	in := bufio.NewReader(os.Stdin)
	mode, _ := in.ReadString('\n')
	switch strings.TrimSpace(mode) {
	case "hello":
		os.Stdout.WriteString("hello\n")
	case "echo":
		io.Copy(os.Stdout, in)
	case "re":
		var p *int
		*p = 1
	case "cpu":
		x := 0
		for {
			x++
		}
	case "sleep":
		time.Sleep(30 * time.Second)
	case "mle":
		var hold [][]byte
		for {
			b := make([]byte, 16<<20)
			for i := range b {
				b[i] = 1
			}
			hold = append(hold, b)
		}
	case "ole":
		b := []byte(strings.Repeat("x", 65536))
		for {
			os.Stdout.Write(b)
		}
	case "exit":
		os.Exit(3)
	}
}
