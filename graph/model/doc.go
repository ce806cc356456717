// Package model holds the Go types gqlgen generates from the schema (models_gen.go): the app's
// objects, inputs and enums, which resolvers, filters and the typed tables use.
package model
