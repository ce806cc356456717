// Package testapp is a tiny gqlgen app that engine's tests run inside gqlgen's executor.
package testapp

//go:generate go tool gqlgen generate --config gqlgen.yml

// Resolver has no dependencies: every subscription resolver is engine.Yield.
type Resolver struct{}
