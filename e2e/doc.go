// Package e2e holds the tests that run the built binary as a child process: crash recovery and the real npm GraphQL clients.
package e2e
