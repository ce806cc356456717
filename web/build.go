//go:build ignore

// Command build rebuilds web/dist with `node build.mjs`; `go generate ./web` runs it. Without node
// or the npm packages (npm ci at the repository root) it says so and leaves web/dist as committed.
package main

import (
	"fmt"
	"os"
	"os/exec"
)

func main() {
	node, err := exec.LookPath("node")
	if err != nil {
		fmt.Println("web: skipping the page build: node is not installed; web/dist stays as committed (install Node 20 and run npm ci to rebuild)")
		return
	}
	if _, err := os.Stat("../node_modules/esbuild/package.json"); err != nil {
		fmt.Println("web: skipping the page build: node_modules/esbuild is missing; web/dist stays as committed (run npm ci at the repository root to rebuild)")
		return
	}
	cmd := exec.Command(node, "build.mjs")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "web: node build.mjs:", err)
		os.Exit(1)
	}
}
