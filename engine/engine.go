// Package engine is the framework half of the GraphQL layer: it reads a schema's declarations of
// where subscription events come from (@item, @topic, @fromChange, @fromEvent) into a routing
// table, addresses each decoded change to the subscription fields and topics it feeds, lets every
// subscription resolver yield the event being rendered with one call (Yield), and gives resolvers
// the typed table of each @item type (Tables, Table).
//
// The app (package graph) brings the schema, the models and thin resolvers; the sources (package
// publish) decode stream records and external events into a neutral Change. Nothing here knows
// AWS's event shapes.
package engine
